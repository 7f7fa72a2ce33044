//! Sign-in sessions and revoked tokens.

use chrono::{DateTime, Utc};
use diesel::dsl::{exists, now, select};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::db::schema::{revoked_tokens, sessions};
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
    /// token works once. None when no live session holds it.
    pub async fn rotate(
        conn: &mut AsyncPgConnection,
        old_digest: &str,
        new_digest: &str,
        expires_at: DateTime<Utc>,
    ) -> QueryResult<Option<Self>> {
        diesel::update(
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
        .optional()
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

/// Whether any of the identifiers is revoked, or the session has ended.
pub async fn is_revoked(
    conn: &mut AsyncPgConnection,
    revocation_ids: &[String],
    session: Option<i64>,
) -> QueryResult<bool> {
    let token_revoked =
        exists(revoked_tokens::table.filter(revoked_tokens::revocation_id.eq_any(revocation_ids)));
    let session_ended = exists(
        sessions::table
            .filter(sessions::id.nullable().eq(session))
            .filter(sessions::revoked_at.is_not_null()),
    );
    select(token_revoked.or(session_ended))
        .get_result(conn)
        .await
}
