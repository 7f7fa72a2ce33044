//! Authentication and authorization.
//!
//! The HTTP layer turns the `Authorization: Bearer` token into a [`Viewer`] once per request
//! ([`authenticate`]); guards and resolvers only read the viewer and ask
//! [`Viewer::require`](permissions) whether a permission is held.

pub mod cache;
pub mod passwords;
pub mod permissions;
pub mod secrets;
pub mod throttle;
pub mod tokens;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::Duration;

use self::permissions::Operation;
use self::tokens::{TokenKeys, VerifiedToken};
use crate::db::Pool;
use crate::error::{AppError, AppResult};
use crate::limits::Limits;
use crate::models::enums::AgencyRole;
use crate::models::ids::{AgencyId, UserId};
use crate::models::user::User;

/// Token settings, the password hasher and the sign-in throttles, shared by the sign-in
/// mutations and the HTTP layer.
#[derive(Debug)]
pub struct AuthConfig {
    /// The key pair that signs access tokens.
    pub keys: TokenKeys,
    /// Lifetime of access tokens.
    pub access_token_lifetime: Duration,
    /// Lifetime of a session (and its refresh token) without renewal.
    pub session_lifetime: Duration,
    /// Hashes passwords off the async workers, a bounded number at once.
    pub hasher: passwords::Hasher,
    /// Sign-in attempts per account and per client address.
    pub throttle: throttle::SignInThrottle,
    /// Verified tokens and their credentials, kept current by the database's notifications.
    pub credentials: Arc<cache::CredentialCache>,
    /// Longest token read, in bytes.
    pub max_token_bytes: usize,
}

impl AuthConfig {
    /// Default lifetimes (15-minute access tokens, 30-day sessions) and default limits.
    pub fn new(keys: TokenKeys) -> Self {
        Self::with_limits(keys, &Limits::default())
    }

    /// Default lifetimes, and the hasher and throttles that `limits` configure.
    pub fn with_limits(keys: TokenKeys, limits: &Limits) -> Self {
        Self {
            keys,
            access_token_lifetime: Duration::minutes(15),
            session_lifetime: Duration::days(30),
            hasher: passwords::Hasher::new(limits.hash_concurrency()),
            throttle: throttle::SignInThrottle::new(limits),
            credentials: Arc::new(cache::CredentialCache::new(
                limits.auth_cache_tokens,
                limits.auth_cache_bytes,
            )),
            max_token_bytes: limits.max_token_bytes,
        }
    }
}

/// Who is making a request.
#[derive(Debug, Clone)]
pub enum Viewer {
    /// No token: public data only.
    Anonymous,
    /// A user with a valid token.
    User(Arc<SignedIn>),
}

/// A signed-in user, with roles as the database says now.
#[derive(Debug)]
pub struct SignedIn {
    /// The user.
    pub user_id: UserId,
    /// Whether the user is platform staff.
    pub is_platform_admin: bool,
    /// Effective roles by agency, superagency roles extended to child agencies.
    pub roles: HashMap<AgencyId, AgencyRole>,
    /// The token presented.
    pub token: VerifiedToken,
    decisions: Mutex<HashMap<(Operation, Option<AgencyId>), bool>>,
}

impl SignedIn {
    /// Whether the token's own checks allow `operation` on `agency`; remembered for the rest
    /// of the request, as lists ask the same question for each of their items.
    pub fn token_allows(&self, operation: Operation, agency: Option<AgencyId>) -> bool {
        let key = (operation, agency);
        if let Ok(decisions) = self.decisions.lock()
            && let Some(&allowed) = decisions.get(&key)
        {
            return allowed;
        }
        let allowed = self.token.allows(operation, agency);
        if let Ok(mut decisions) = self.decisions.lock() {
            decisions.insert(key, allowed);
        }
        allowed
    }
}

impl Viewer {
    /// The signed-in user's id.
    pub fn user_id(&self) -> Option<UserId> {
        match self {
            Self::Anonymous => None,
            Self::User(user) => Some(user.user_id),
        }
    }

    /// The signed-in user, or UNAUTHENTICATED.
    pub fn signed_in(&self) -> AppResult<&SignedIn> {
        match self {
            Self::Anonymous => Err(AppError::Unauthenticated("sign in first".into())),
            Self::User(user) => Ok(user),
        }
    }

    /// Whether the viewer is platform staff.
    pub fn is_platform_admin(&self) -> bool {
        matches!(self, Self::User(user) if user.is_platform_admin)
    }
}

/// Turns the value of an `Authorization` header into a viewer: anonymous without one, a user
/// for a valid, unrevoked token of an existing user, UNAUTHENTICATED otherwise.
pub async fn authenticate(
    pool: &Pool,
    config: &AuthConfig,
    authorization: Option<&str>,
) -> AppResult<Viewer> {
    let Some(header) = authorization else {
        return Ok(Viewer::Anonymous);
    };
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or_else(|| AppError::Unauthenticated("use `Authorization: Bearer <token>`".into()))?;
    if token.len() > config.max_token_bytes {
        crate::limits::log_refusal("max_token_bytes", "");
        return Err(AppError::Unauthenticated(format!(
            "the access token is longer than {} bytes",
            config.max_token_bytes
        )));
    }
    let (verified, credentials) = match config.credentials.get(token) {
        Ok(entry) => (entry.token, entry.credentials),
        Err(ticket) => {
            let verified = config.keys.verify(token)?;
            // A connection only when the credentials are not already in memory.
            let mut conn = pool.get().await?;
            let credentials = User::credentials(
                &mut conn,
                verified.user_id,
                &verified.revocation_ids,
                verified.session_id,
            )
            .await?
            .ok_or_else(|| {
                AppError::Unauthenticated("the access token's user no longer exists".into())
            })?;
            config
                .credentials
                .put(ticket, token, &verified, &credentials);
            (verified, credentials)
        }
    };
    if credentials.revoked {
        return Err(AppError::Unauthenticated(
            "the access token was revoked; sign in again".into(),
        ));
    }
    Ok(Viewer::User(Arc::new(SignedIn {
        user_id: verified.user_id,
        is_platform_admin: credentials.is_platform_admin,
        roles: credentials.roles,
        token: verified,
        decisions: Mutex::new(HashMap::new()),
    })))
}
