//! The one error type of the API and its mapping to GraphQL errors with a stable
//! `extensions.code`.
//!
//! Internal details (database messages, pool failures) are logged here and replaced by a
//! generic message before they reach a client.

use async_graphql::ErrorExtensions;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// The fixed set of error codes a client may see in `extensions.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// An argument or input value is invalid.
    BadUserInput,
    /// No valid credentials were presented.
    Unauthenticated,
    /// The viewer is known but lacks the role the operation needs.
    Forbidden,
    /// The object does not exist, or the viewer may not know that it does.
    NotFound,
    /// The operation conflicts with the current state (duplicate, stale version).
    Conflict,
    /// Too many requests or sign-in attempts; `extensions.retryAfter` says how many seconds to
    /// wait (and the `Retry-After` header, when the whole request was refused).
    RateLimited,
    /// The database is unreachable or saturated, or the request ran out of time; retry later.
    ServiceUnavailable,
    /// Something failed on the server; details are in the server log only.
    InternalServerError,
}

impl ErrorCode {
    /// The code as clients see it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadUserInput => "BAD_USER_INPUT",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::Conflict => "CONFLICT",
            Self::RateLimited => "RATE_LIMITED",
            Self::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            Self::InternalServerError => "INTERNAL_SERVER_ERROR",
        }
    }
}

/// An error of the API, carrying a message fit for the user.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// See [`ErrorCode::BadUserInput`].
    #[error("{0}")]
    BadUserInput(String),
    /// See [`ErrorCode::Unauthenticated`].
    #[error("{0}")]
    Unauthenticated(String),
    /// See [`ErrorCode::Forbidden`].
    #[error("{0}")]
    Forbidden(String),
    /// See [`ErrorCode::NotFound`].
    #[error("{0}")]
    NotFound(String),
    /// See [`ErrorCode::Conflict`].
    #[error("{0}")]
    Conflict(String),
    /// An error of any code with structured details for the client, added to
    /// `extensions` (for example every invalid value of a save with its path).
    #[error("{message}")]
    Detailed {
        /// The code.
        code: ErrorCode,
        /// The message.
        message: String,
        /// A JSON object whose fields are added to `extensions`.
        details: serde_json::Value,
    },
    /// See [`ErrorCode::RateLimited`].
    #[error("{message}")]
    RateLimited {
        /// The message.
        message: String,
        /// Seconds to wait before trying again.
        retry_after: u64,
    },
    /// See [`ErrorCode::ServiceUnavailable`]; the source, if any, is logged.
    #[error("{0}")]
    Unavailable(String),
    /// See [`ErrorCode::InternalServerError`]; the source is logged, never shown.
    #[error("internal server error")]
    Internal(#[source] anyhow::Error),
}

/// The result of model functions and resolvers.
pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::BadUserInput(_) => ErrorCode::BadUserInput,
            Self::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::Detailed { code, .. } => *code,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Unavailable(_) => ErrorCode::ServiceUnavailable,
            Self::Internal(_) => ErrorCode::InternalServerError,
        }
    }

    /// The GraphQL error for this error, with its code.
    pub fn into_gql(self) -> async_graphql::Error {
        self.extend()
    }

    /// An internal error from anything that describes itself.
    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        Self::Internal(error.into())
    }
}

impl ErrorExtensions for AppError {
    fn extend(&self) -> async_graphql::Error {
        if let Self::Internal(source) = self {
            tracing::error!(error = ?source, "internal error while resolving a request");
        }
        async_graphql::Error::new(self.to_string()).extend_with(|_, extensions| {
            extensions.set("code", self.code().as_str());
            if let Self::RateLimited { retry_after, .. } = self {
                extensions.set("retryAfter", *retry_after);
            }
            if let Self::Detailed {
                details: serde_json::Value::Object(fields),
                ..
            } = self
            {
                for (key, value) in fields {
                    if let Ok(value) = async_graphql::Value::from_json(value.clone()) {
                        extensions.set(key.as_str(), value);
                    }
                }
            }
        })
    }
}

/// The message shown for a violated unique or check constraint, by constraint name.
fn constraint_message(constraint: &str) -> Option<&'static str> {
    Some(match constraint {
        "reports_agency_period_key" => {
            "the agency already has a report for this frequency and period"
        }
        "users_email_key" => "a user with this email address already exists",
        "memberships_pkey" => "the user is already a member of this agency",
        "datapoints_one_per_cell" => "the report already has a value for this metric and breakdown",
        "agencies_super_agency_is_superagency" => {
            "the parent agency must be a superagency, and a superagency with children keeps its flag"
        }
        "agencies_not_own_superagency" => "an agency cannot be its own superagency",
        "reports_period_starts_on_first" => "a report period starts on the first day of a month",
        "reports_period_matches_frequency" => {
            "a monthly report covers one month and an annual report twelve months"
        }
        _ => return None,
    })
}

impl From<DieselError> for AppError {
    fn from(error: DieselError) -> Self {
        match &error {
            DieselError::NotFound => Self::NotFound("not found".into()),
            DieselError::DatabaseError(kind, info) => {
                let known = info.constraint_name().and_then(constraint_message);
                match (kind, known) {
                    (DatabaseErrorKind::UniqueViolation, Some(message)) => {
                        Self::Conflict(message.into())
                    }
                    (DatabaseErrorKind::UniqueViolation, None) => {
                        Self::Conflict("the object already exists".into())
                    }
                    (DatabaseErrorKind::CheckViolation, Some(message)) => {
                        Self::BadUserInput(message.into())
                    }
                    (DatabaseErrorKind::CheckViolation, None) => {
                        tracing::warn!(%error, "a check without a message refused a write");
                        Self::BadUserInput("the input breaks a rule of the data model".into())
                    }
                    (DatabaseErrorKind::ClosedConnection, _) => {
                        tracing::warn!(%error, "the database closed a connection");
                        Self::Unavailable(UNAVAILABLE.into())
                    }
                    // The server is going away (SQLSTATE 57P01, an administrator or a
                    // failover ended the connection): retry elsewhere or later.
                    _ if info.message().contains("terminating connection") => {
                        tracing::warn!(%error, "the database ended a connection");
                        Self::Unavailable(UNAVAILABLE.into())
                    }
                    // SQLSTATE 22021 and 22P05: text holding U+0000, which PostgreSQL
                    // cannot store.
                    _ if info.message().contains("invalid byte sequence")
                        || info
                            .message()
                            .contains("unsupported Unicode escape sequence") =>
                    {
                        Self::BadUserInput("text may not contain the character U+0000".into())
                    }
                    // SQLSTATE 57014: `statement_timeout` cancelled the statement.
                    _ if info.message().contains("statement timeout") => {
                        tracing::warn!(%error, "a statement ran out of time");
                        Self::Unavailable(TOO_SLOW.into())
                    }
                    _ => Self::internal(error),
                }
            }
            _ => Self::internal(error),
        }
    }
}

/// The message when no database connection could be had in time.
const UNAVAILABLE: &str = "the database is unavailable or busy; retry shortly";
/// The message when a statement or the request ran out of time.
pub const TOO_SLOW: &str = "the request took too long and was stopped; retry shortly";

impl From<crate::db::PoolError> for AppError {
    fn from(error: crate::db::PoolError) -> Self {
        tracing::warn!(%error, "no database connection");
        Self::Unavailable(UNAVAILABLE.into())
    }
}
