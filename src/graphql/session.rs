//! Signing in and out: sessions with short-lived access tokens and one-use refresh tokens.

use async_graphql::{Context, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::guards::{SignedIn, viewer};
use super::user::CurrentUser;
use super::{Gql, auth_config, connection};
use crate::auth::{AuthConfig, passwords, secrets};
use crate::db::PooledConnection;
use crate::error::{AppError, AppResult};
use crate::models::session::{self, Session};
use crate::models::user::User;

/// Prefix of refresh tokens, so that they are recognisable in logs and secret scanners.
const REFRESH_PREFIX: &str = "jcr_";

/// A signed-in session's credentials.
#[derive(SimpleObject)]
pub struct SessionPayload {
    /// Send as `Authorization: Bearer <accessToken>`. A biscuit token that may be narrowed
    /// offline by appending checks.
    pub access_token: String,
    /// When the access token stops working; renew it before then.
    pub access_token_expires_at: DateTime<Utc>,
    /// Exchange for new tokens with `renewSession`; works once.
    pub refresh_token: String,
    /// When the session ends unless renewed.
    pub refresh_token_expires_at: DateTime<Utc>,
    /// The signed-in user.
    pub user: CurrentUser,
}

/// Credentials for `signIn`.
#[derive(InputObject)]
pub struct SignInInput {
    /// The account's email address (case does not matter).
    pub email: String,
    /// The account's password.
    pub password: String,
}

/// Starts a session for `user` and returns its tokens.
pub(crate) async fn open_session(
    conn: &mut PooledConnection<'_>,
    config: &AuthConfig,
    user: User,
) -> AppResult<SessionPayload> {
    let refresh_token = secrets::generate(REFRESH_PREFIX);
    let refresh_expires = Utc::now() + config.session_lifetime;
    let session = Session::start(
        conn,
        user.id,
        &secrets::digest(&refresh_token),
        refresh_expires,
    )
    .await?;
    payload(config, user, session, refresh_token)
}

fn payload(
    config: &AuthConfig,
    user: User,
    session: Session,
    refresh_token: String,
) -> AppResult<SessionPayload> {
    let expires = Utc::now() + config.access_token_lifetime;
    let access_token = config.keys.issue(user.id, Some(session.id), expires)?;
    Ok(SessionPayload {
        access_token,
        access_token_expires_at: expires,
        refresh_token,
        refresh_token_expires_at: session.expires_at,
        user: CurrentUser(user),
    })
}

/// Mutations that sign in and out.
#[derive(Default)]
pub struct SessionMutation;

#[Object]
impl SessionMutation {
    /// Signs in with email and password. A wrong email and a wrong password fail alike, with
    /// UNAUTHENTICATED.
    async fn sign_in(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The credentials.")] input: SignInInput,
    ) -> async_graphql::Result<SessionPayload> {
        let mut conn = connection(ctx).await.gql()?;
        let user = User::find_by_email(&mut conn, &input.email).await.gql()?;
        let hash = user.as_ref().and_then(|user| user.password_hash.as_deref());
        if !passwords::verify(&input.password, hash) {
            return Err(
                AppError::Unauthenticated("the email or password is wrong".into()).into_gql(),
            );
        }
        let Some(user) = user else {
            return Err(
                AppError::Unauthenticated("the email or password is wrong".into()).into_gql(),
            );
        };
        open_session(&mut conn, auth_config(ctx), user).await.gql()
    }

    /// Exchanges a refresh token for a new access token and a new refresh token; the old
    /// refresh token stops working.
    async fn renew_session(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The refresh token from `signIn` or the last renewal.")]
        refresh_token: String,
    ) -> async_graphql::Result<SessionPayload> {
        let config = auth_config(ctx);
        let mut conn = connection(ctx).await.gql()?;
        let next = secrets::generate(REFRESH_PREFIX);
        let expires = Utc::now() + config.session_lifetime;
        let session = Session::rotate(
            &mut conn,
            &secrets::digest(&refresh_token),
            &secrets::digest(&next),
            expires,
        )
        .await
        .gql()?
        .ok_or_else(|| {
            AppError::Unauthenticated(
                "the refresh token is unknown, used, expired or revoked".into(),
            )
            .into_gql()
        })?;
        let user = User::find(&mut conn, session.user_id)
            .await
            .gql()?
            .ok_or_else(|| {
                AppError::Unauthenticated("the user no longer exists".into()).into_gql()
            })?;
        payload(config, user, session, next).gql()
    }

    /// Signs out: the session's refresh token, this access token and every token derived from
    /// it stop working. Returns true.
    #[graphql(guard = "SignedIn")]
    async fn sign_out(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        let signed_in = viewer(ctx).signed_in().gql()?;
        let mut conn = connection(ctx).await.gql()?;
        let token = &signed_in.token;
        session::revoke_tokens(&mut conn, &token.revocation_ids, Some(signed_in.user_id))
            .await
            .gql()?;
        if let Some(session) = token.session_id {
            Session::revoke(&mut conn, session).await.gql()?;
        }
        Ok(true)
    }
}
