//! Signing in and out: sessions with short-lived access tokens and one-use refresh tokens.

use async_graphql::{Context, InputObject, Object, SimpleObject};
use chrono::Utc;

use super::guards::{SignedIn, viewer};
use super::scalars::Timestamp;
use super::user::CurrentUser;
use super::{Gql, auth_config, connection};
use crate::auth::throttle::ClientAddress;
use crate::auth::{AuthConfig, secrets};
use crate::error::{AppError, AppResult};
use crate::events::{self, Revocation};
use crate::models::session::{self, Rotation, Session};
use crate::models::user::User;
use diesel_async::AsyncConnection;

/// Prefix of refresh tokens, so that they are recognisable in logs and secret scanners.
const REFRESH_PREFIX: &str = "jcr_";

/// A signed-in session's credentials.
#[derive(SimpleObject)]
pub struct SessionPayload {
    /// Send as `Authorization: Bearer <accessToken>`. A biscuit token that may be narrowed
    /// offline by appending checks.
    pub access_token: String,
    /// When the access token stops working; renew it before then.
    pub access_token_expires_at: Timestamp,
    /// Exchange for new tokens with `renewSession`; works once.
    pub refresh_token: String,
    /// When the session ends unless renewed.
    pub refresh_token_expires_at: Timestamp,
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
    conn: &mut diesel_async::AsyncPgConnection,
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
        access_token_expires_at: expires.into(),
        refresh_token,
        refresh_token_expires_at: session.expires_at.into(),
        user: CurrentUser(user),
    })
}

/// The client's address, as the HTTP layer found it.
pub(super) fn client_address(ctx: &Context<'_>) -> ClientAddress {
    ctx.data_opt::<ClientAddress>()
        .copied()
        .unwrap_or(ClientAddress(None))
}

/// Mutations that sign in and out.
#[derive(Default)]
pub struct SessionMutation;

#[Object]
impl SessionMutation {
    /// Signs in with email and password. A wrong email and a wrong password fail alike, with
    /// UNAUTHENTICATED. Attempts are throttled per account and per client address
    /// (RATE_LIMITED, with `extensions.retryAfter` in seconds).
    async fn sign_in(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The credentials.")] input: SignInInput,
    ) -> async_graphql::Result<SessionPayload> {
        let config = auth_config(ctx);
        config.throttle.attempt_from(client_address(ctx)).gql()?;
        config.throttle.attempt_on(&input.email).gql()?;
        let found = {
            let mut conn = connection(ctx).await.gql()?;
            User::signing_in(&mut conn, &input.email).await.gql()?
        };
        // No connection is held while the password is checked: hashes may queue.
        let (user, hash) = found.map_or((None, None), |(user, hash)| (Some(user), hash));
        let matches = config
            .hasher
            .verify(&input.password, hash.as_deref())
            .await
            .gql()?;
        let (true, Some(user)) = (matches, user) else {
            return Err(
                AppError::Unauthenticated("the email or password is wrong".into()).into_gql(),
            );
        };
        let mut conn = connection(ctx).await.gql()?;
        open_session(&mut conn, config, user).await.gql()
    }

    /// Exchanges a refresh token for a new access token and a new refresh token; the old
    /// refresh token stops working. Presenting a refresh token a second time revokes its whole
    /// session, as the token must have been copied.
    async fn renew_session(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The refresh token from `signIn` or the last renewal.")]
        refresh_token: String,
    ) -> async_graphql::Result<SessionPayload> {
        let config = auth_config(ctx);
        config.throttle.attempt_from(client_address(ctx)).gql()?;
        let mut conn = connection(ctx).await.gql()?;
        let next = secrets::generate(REFRESH_PREFIX);
        let expires = Utc::now() + config.session_lifetime;
        let rotation = Session::rotate(
            &mut conn,
            &secrets::digest(&refresh_token),
            &secrets::digest(&next),
            expires,
        )
        .await
        .gql()?;
        let session = match rotation {
            Rotation::Renewed(session) => session,
            Rotation::Reused(session) => {
                tracing::warn!(
                    session,
                    "a spent refresh token was presented again; session revoked"
                );
                let revocation = Revocation {
                    session_id: Some(session),
                    revocation_ids: Vec::new(),
                };
                events::notify_revocation(&mut conn, &revocation)
                    .await
                    .gql()?;
                config.credentials.revoke(&revocation);
                return Err(AppError::Unauthenticated(
                    "this refresh token was already used, so it may have been stolen: the \
                     session is revoked; sign in again"
                        .into(),
                )
                .into_gql());
            }
            Rotation::Unknown => {
                return Err(AppError::Unauthenticated(
                    "the refresh token is unknown, expired or revoked".into(),
                )
                .into_gql());
            }
        };
        let user = User::find(&mut conn, session.user_id)
            .await
            .gql()?
            .ok_or_else(|| {
                AppError::Unauthenticated("the user no longer exists".into()).into_gql()
            })?;
        payload(config, user, session, next).gql()
    }

    /// Signs out: the session's refresh token, this access token and every token derived from
    /// it stop working, and open subscriptions made with them end. With a narrowed token (one
    /// derived from another), only that token and those derived from it stop working: whoever
    /// was handed a narrowed token cannot end the session it came from. Returns true.
    #[graphql(guard = "SignedIn")]
    async fn sign_out(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        let signed_in = viewer(ctx).signed_in().gql()?;
        let mut conn = connection(ctx).await.gql()?;
        let token = &signed_in.token;
        // A token's blocks each have a revocation id; a derived token's last one is its own.
        let narrowed = token.revocation_ids.len() > 1;
        let (session, revoked) = if narrowed {
            (
                None,
                token.revocation_ids.last().cloned().into_iter().collect(),
            )
        } else {
            (token.session_id, token.revocation_ids.clone())
        };
        conn.transaction(async |conn| {
            session::revoke_tokens(conn, &revoked, Some(signed_in.user_id)).await?;
            if let Some(session) = session {
                Session::revoke(conn, session).await?;
            }
            let revocation = Revocation {
                session_id: session,
                revocation_ids: revoked,
            };
            events::notify_revocation(conn, &revocation).await?;
            Ok::<_, diesel::result::Error>(revocation)
        })
        .await
        // This process forgets at once; the others when the notification arrives.
        .map(|revocation| auth_config(ctx).credentials.revoke(&revocation))
        .gql()?;
        Ok(true)
    }
}
