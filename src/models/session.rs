//! Sign-in sessions and revoked tokens.

use chrono::{DateTime, Utc};
use diesel::dsl::now;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::db::schema::{revoked_tokens, sessions, spent_refresh_tokens};
use crate::models::ids::UserId;

/// A signed-in session.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sessions, check_for_backend(diesel::pg::Pg))]
pub struct Session {
    /// Its id, named in the session's access tokens.
    pub id: i64,
    /// The user.
    pub user_id: UserId,
    /// When the session's refresh token stops working.
    pub expires_at: DateTime<Utc>,
}

impl Session {
    /// Starts a session whose refresh token has `refresh_digest`.
    pub async fn start(
        conn: &mut AsyncPgConnection,
        user: UserId,
        refresh_digest: &str,
        expires_at: DateTime<Utc>,
    ) -> QueryResult<Self> {
        diesel::insert_into(sessions::table)
            .values((
                sessions::user_id.eq(user),
                sessions::refresh_token_hash.eq(refresh_digest),
                sessions::expires_at.eq(expires_at),
            ))
            .returning(Self::as_returning())
            .get_result(conn)
            .await
    }

    /// Replaces the refresh token of the live session holding `old_digest`: each refresh
    /// token works once. A token presented again after it was exchanged was copied: the
    /// session is revoked ([`Rotation::Reused`]).
    pub async fn rotate(
        conn: &mut AsyncPgConnection,
        old_digest: &str,
        new_digest: &str,
        expires_at: DateTime<Utc>,
    ) -> QueryResult<Rotation> {
        conn.transaction(async |conn| {
            let rotated = diesel::update(
                sessions::table
                    .filter(sessions::refresh_token_hash.eq(old_digest))
                    .filter(sessions::revoked_at.is_null())
                    .filter(sessions::expires_at.gt(now)),
            )
            .set((
                sessions::refresh_token_hash.eq(new_digest),
                sessions::renewed_at.eq(now),
                sessions::expires_at.eq(expires_at),
            ))
            .returning(Self::as_returning())
            .get_result(conn)
            .await
            .optional()?;
            if let Some(session) = rotated {
                diesel::insert_into(spent_refresh_tokens::table)
                    .values((
                        spent_refresh_tokens::refresh_token_hash.eq(old_digest),
                        spent_refresh_tokens::session_id.eq(session.id),
                    ))
                    .execute(conn)
                    .await?;
                return Ok(Rotation::Renewed(session));
            }
            let spent: Option<i64> = spent_refresh_tokens::table
                .find(old_digest)
                .select(spent_refresh_tokens::session_id)
                .first(conn)
                .await
                .optional()?;
            match spent {
                Some(session) => {
                    Self::revoke(conn, session).await?;
                    Ok(Rotation::Reused(session))
                }
                None => Ok(Rotation::Unknown),
            }
        })
        .await
    }

    /// Ends a session: its refresh token and every access token naming it stop working.
    pub async fn revoke(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<()> {
        diesel::update(
            sessions::table
                .find(id)
                .filter(sessions::revoked_at.is_null()),
        )
        .set(sessions::revoked_at.eq(now))
        .execute(conn)
        .await
        .map(drop)
    }
}

/// What presenting a refresh token did.
#[derive(Debug, Clone)]
pub enum Rotation {
    /// The session was renewed with a new refresh token.
    Renewed(Session),
    /// The token had been exchanged before: the session (this id) is now revoked.
    Reused(i64),
    /// No session holds the token, or it ended or expired.
    Unknown,
}

/// Records the revocation identifiers of a token.
pub async fn revoke_tokens(
    conn: &mut AsyncPgConnection,
    revocation_ids: &[String],
    user: Option<UserId>,
) -> QueryResult<()> {
    let rows: Vec<_> = revocation_ids
        .iter()
        .map(|id| {
            (
                revoked_tokens::revocation_id.eq(id),
                revoked_tokens::user_id.eq(user),
            )
        })
        .collect();
    diesel::insert_into(revoked_tokens::table)
        .values(rows)
        .on_conflict_do_nothing()
        .execute(conn)
        .await
        .map(drop)
}
