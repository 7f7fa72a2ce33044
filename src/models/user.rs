//! Users and their memberships in agencies.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::db::schema::{membership_changes, memberships, users};
use crate::error::{AppError, AppResult};
use crate::models::enums::{AgencyRole, InvitationStatus};
use crate::models::ids::{AgencyId, UserId};

/// A user of the platform.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct User {
    /// Its id.
    pub id: UserId,
    /// Full name.
    pub name: String,
    /// Email address, unique ignoring case.
    pub email: String,
    /// Whether the user is platform staff (JUSTICE_COUNTS_ADMIN).
    pub is_platform_admin: bool,
    /// When the user was created.
    pub created_at: DateTime<Utc>,
}

impl User {
    /// The user with this id.
    pub async fn find(conn: &mut AsyncPgConnection, id: UserId) -> QueryResult<Option<Self>> {
        users::table
            .find(id)
            .select(Self::as_select())
            .first(conn)
            .await
            .optional()
    }

    /// The users with these ids, in no particular order.
    pub async fn by_ids(conn: &mut &AsyncPgConnection, ids: &[UserId]) -> QueryResult<Vec<Self>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        users::table
            .filter(users::id.eq_any(ids))
            .select(Self::as_select())
            .load(conn)
            .await
    }

    /// The user with this email address, ignoring case.
    pub async fn find_by_email(
        conn: &mut AsyncPgConnection,
        email: &str,
    ) -> QueryResult<Option<Self>> {
        Ok(Self::signing_in(conn, email).await?.map(|(user, _)| user))
    }

    /// The user with this email address, ignoring case, with the hash of their password (none
    /// until they choose one): the one read of password hashes, for signing in.
    pub async fn signing_in(
        conn: &mut AsyncPgConnection,
        email: &str,
    ) -> QueryResult<Option<(Self, Option<String>)>> {
        users::table
            .filter(
                diesel::dsl::sql::<diesel::sql_types::Bool>("lower(users.email) = lower(")
                    .bind::<diesel::sql_types::Text, _>(email.trim().to_owned())
                    .sql(")"),
            )
            .select((Self::as_select(), users::password_hash))
            .first(conn)
            .await
            .optional()
    }

    /// What authenticating one of the user's tokens needs, in one statement: whether the
    /// user is platform staff, whether any of the token's revocation ids or its session is
    /// revoked, and the effective roles. None when the user does not exist.
    pub async fn credentials(
        conn: &mut AsyncPgConnection,
        user: UserId,
        revocation_ids: &[String],
        session: Option<i64>,
    ) -> QueryResult<Option<Credentials>> {
        // One join for both arrays, in one order, so that they pair up.
        const GRANTS: &str = "FROM memberships m JOIN agencies a \
            ON a.id = m.agency_id OR a.super_agency_id = m.agency_id \
            WHERE m.user_id = u.id AND m.invitation_status = 'ACCEPTED' \
            ORDER BY a.id, m.agency_id";
        let row: Option<CredentialsRow> = diesel::sql_query(format!(
            "SELECT u.is_platform_admin, \
               (EXISTS (SELECT 1 FROM revoked_tokens WHERE revocation_id = ANY($2)) \
                OR EXISTS (SELECT 1 FROM sessions WHERE id = $3 AND revoked_at IS NOT NULL)) \
                 AS revoked, \
               ARRAY(SELECT a.id {GRANTS}) AS agencies, \
               ARRAY(SELECT m.role {GRANTS}) AS roles \
             FROM users u WHERE u.id = $1"
        ))
        .bind::<diesel::sql_types::Int4, _>(user.0)
        .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(revocation_ids)
        .bind::<diesel::sql_types::Nullable<diesel::sql_types::Int8>, _>(session)
        .get_result(conn)
        .await
        .optional()?;
        Ok(row.map(|row| {
            let mut roles: HashMap<AgencyId, AgencyRole> = HashMap::new();
            for (agency, role) in row.agencies.into_iter().zip(row.roles) {
                let entry = roles.entry(AgencyId(agency)).or_insert(role);
                *entry = (*entry).max(role);
            }
            Credentials {
                is_platform_admin: row.is_platform_admin,
                revoked: row.revoked,
                roles,
            }
        }))
    }

    /// Sets the user's password hash.
    pub async fn set_password_hash(
        conn: &mut AsyncPgConnection,
        user: UserId,
        hash: &str,
    ) -> QueryResult<()> {
        diesel::update(users::table.find(user))
            .set(users::password_hash.eq(hash))
            .execute(conn)
            .await
            .map(drop)
    }
}

/// What authenticating a token needs to know of its user (see [`User::credentials`]).
#[derive(Debug, Clone)]
pub struct Credentials {
    /// Whether the user is platform staff.
    pub is_platform_admin: bool,
    /// Whether the token or its session is revoked.
    pub revoked: bool,
    /// Effective roles by agency, superagency roles extended to child agencies.
    pub roles: HashMap<AgencyId, AgencyRole>,
}

#[derive(QueryableByName)]
struct CredentialsRow {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    is_platform_admin: bool,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    revoked: bool,
    #[diesel(sql_type = diesel::sql_types::Array<diesel::sql_types::Int4>)]
    agencies: Vec<i32>,
    #[diesel(sql_type = diesel::sql_types::Array<crate::db::schema::sql_types::AgencyRole>)]
    roles: Vec<AgencyRole>,
}

/// A user's membership in an agency.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = memberships, check_for_backend(diesel::pg::Pg))]
pub struct Membership {
    /// The member.
    pub user_id: UserId,
    /// The agency.
    pub agency_id: AgencyId,
    /// The member's role.
    pub role: AgencyRole,
    /// Whether the invitation was accepted.
    pub invitation_status: InvitationStatus,
    /// When the member last used the agency.
    pub last_visit_at: Option<DateTime<Utc>>,
    /// Whether the member receives email about the agency.
    pub is_subscribed_to_emails: bool,
    /// When the membership was created (the invitation sent).
    pub created_at: DateTime<Utc>,
}

impl Membership {
    /// The memberships of these users, ordered by agency.
    pub async fn of_users(
        conn: &mut &AsyncPgConnection,
        users: &[UserId],
    ) -> QueryResult<Vec<Self>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        memberships::table
            .filter(memberships::user_id.eq_any(users))
            .order((memberships::user_id, memberships::agency_id))
            .select(Self::as_select())
            .load(conn)
            .await
    }

    /// The members of these agencies with their users, ordered by name.
    pub async fn of_agencies(
        conn: &mut &AsyncPgConnection,
        agencies: &[AgencyId],
    ) -> QueryResult<Vec<(Self, User)>> {
        if agencies.is_empty() {
            return Ok(Vec::new());
        }
        memberships::table
            .inner_join(users::table.on(users::id.eq(memberships::user_id)))
            .filter(memberships::agency_id.eq_any(agencies))
            .order((users::name, users::id))
            .select((Self::as_select(), User::as_select()))
            .load(conn)
            .await
    }
}

/// Invites `email` into `agency` with `role`, creating the user when unknown. Stores the
/// digest of the one-time `code_digest`; returns the pending membership and its user.
pub async fn invite(
    conn: &mut AsyncPgConnection,
    agency: AgencyId,
    email: &str,
    name: &str,
    role: AgencyRole,
    code_digest: &str,
    invited_by: UserId,
) -> AppResult<(Membership, User)> {
    conn.transaction(async |conn| {
        let user = match User::find_by_email(conn, email).await? {
            Some(user) => user,
            None => {
                let id = NewUser {
                    name: name.trim().into(),
                    email: email.trim().into(),
                    is_platform_admin: false,
                }
                .insert(conn)
                .await?;
                User::find(conn, id).await?.ok_or(diesel::NotFound)?
            }
        };
        let membership = diesel::insert_into(memberships::table)
            .values((
                memberships::user_id.eq(user.id),
                memberships::agency_id.eq(agency),
                memberships::role.eq(role),
                memberships::invitation_status.eq(InvitationStatus::Pending),
                memberships::invitation_code_hash.eq(code_digest),
                memberships::invited_by.eq(invited_by),
            ))
            .returning(Membership::as_returning())
            .get_result(conn)
            .await?;
        diesel::insert_into(membership_changes::table)
            .values(NewMembershipChange {
                user_id: user.id,
                agency_id: agency,
                old_role: None,
                new_role: Some(role),
                changed_by: Some(invited_by),
            })
            .execute(conn)
            .await?;
        Ok((membership, user))
    })
    .await
}

/// Accepts the pending invitation whose code has `code_digest`: the membership becomes
/// ACCEPTED and the code is spent. `set_password` gives the hash to store when the user has
/// none yet; an existing password must match `check_password` instead, and `attempt` is asked
/// first with the account's email (a sign-in attempt on it, for the throttle).
pub async fn accept_invitation(
    conn: &mut AsyncPgConnection,
    hasher: &crate::auth::passwords::Hasher,
    code_digest: &str,
    password: &str,
    attempt: impl FnOnce(&str) -> AppResult<()> + Send,
) -> AppResult<User> {
    conn.transaction(async |conn| {
        let invalid = || {
            AppError::BadUserInput("the invitation code is not valid or was already used".into())
        };
        let pending: Option<Membership> = memberships::table
            .filter(memberships::invitation_code_hash.eq(code_digest))
            .filter(memberships::invitation_status.eq(InvitationStatus::Pending))
            .select(Membership::as_select())
            .for_update()
            .first(conn)
            .await
            .optional()?;
        let membership = pending.ok_or_else(invalid)?;
        let user = User::find(conn, membership.user_id)
            .await?
            .ok_or_else(invalid)?;
        let existing: Option<String> = users::table
            .find(user.id)
            .select(users::password_hash)
            .first(conn)
            .await?;
        match &existing {
            Some(existing) => {
                attempt(&user.email)?;
                if !hasher.verify(password, Some(existing)).await? {
                    return Err(AppError::Unauthenticated(
                        "this account has a password already: give that password to accept".into(),
                    ));
                }
            }
            None => {
                // Only the user's oldest invitation still standing (the one that created the
                // account, unless it was withdrawn since) chooses the password: another
                // agency's admin holds the code of their own invitation and must not choose
                // the password of someone invited elsewhere first.
                let oldest: Option<AgencyId> = memberships::table
                    .filter(memberships::user_id.eq(user.id))
                    .order((memberships::created_at, memberships::agency_id))
                    .select(memberships::agency_id)
                    .first(conn)
                    .await
                    .optional()?;
                let chooses = oldest == Some(membership.agency_id);
                if !chooses {
                    return Err(AppError::BadUserInput(
                        "this account was invited by another agency first: accept that \
                         invitation first, choosing your password there, then this one with \
                         that password"
                            .into(),
                    ));
                }
                crate::auth::passwords::validate_new(password)?;
                let hash = hasher.hash(password).await?;
                User::set_password_hash(conn, user.id, &hash).await?;
            }
        }
        diesel::update(
            memberships::table
                .filter(memberships::user_id.eq(membership.user_id))
                .filter(memberships::agency_id.eq(membership.agency_id)),
        )
        .set((
            memberships::invitation_status.eq(InvitationStatus::Accepted),
            memberships::invitation_code_hash.eq(None::<String>),
        ))
        .execute(conn)
        .await?;
        Ok(user)
    })
    .await
}

/// A new user.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser {
    /// Full name.
    pub name: String,
    /// Email address, unique ignoring case.
    pub email: String,
    /// Whether the user is platform staff (JUSTICE_COUNTS_ADMIN).
    pub is_platform_admin: bool,
}

impl NewUser {
    /// Inserts the user and returns its id.
    pub async fn insert(&self, conn: &mut AsyncPgConnection) -> QueryResult<UserId> {
        diesel::insert_into(users::table)
            .values(self)
            .returning(users::id)
            .get_result(conn)
            .await
    }
}

/// A new membership of a user in an agency.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = memberships)]
pub struct NewMembership {
    /// The member.
    pub user_id: UserId,
    /// The agency.
    pub agency_id: AgencyId,
    /// The member's role.
    pub role: AgencyRole,
    /// Whether the invitation was accepted.
    pub invitation_status: InvitationStatus,
}

/// A change of a member's role, kept forever.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = membership_changes)]
pub struct NewMembershipChange {
    /// The member.
    pub user_id: UserId,
    /// The agency.
    pub agency_id: AgencyId,
    /// The role before (none for a new member).
    pub old_role: Option<AgencyRole>,
    /// The role after (none for a removal).
    pub new_role: Option<AgencyRole>,
    /// Who made the change.
    pub changed_by: Option<UserId>,
}

impl NewMembership {
    /// Grants the membership and records the grant in the membership history.
    pub async fn insert(
        &self,
        conn: &mut AsyncPgConnection,
        granted_by: Option<UserId>,
    ) -> QueryResult<()> {
        diesel::insert_into(memberships::table)
            .values(self)
            .execute(conn)
            .await?;
        diesel::insert_into(membership_changes::table)
            .values(NewMembershipChange {
                user_id: self.user_id,
                agency_id: self.agency_id,
                old_role: None,
                new_role: Some(self.role),
                changed_by: granted_by,
            })
            .execute(conn)
            .await?;
        Ok(())
    }
}

/// Fails with CONFLICT when taking `user`'s admin role in `agency` away would leave the
/// agency without an accepted admin. Locks the agency's memberships until the transaction
/// ends, so that two admins cannot demote each other at once.
async fn keep_an_admin(
    conn: &mut AsyncPgConnection,
    agency: AgencyId,
    user: UserId,
) -> AppResult<()> {
    let members: Vec<Membership> = memberships::table
        .filter(memberships::agency_id.eq(agency))
        .select(Membership::as_select())
        .for_update()
        .load(conn)
        .await?;
    let admins = members.iter().filter(|m| {
        m.role == AgencyRole::AgencyAdmin && m.invitation_status == InvitationStatus::Accepted
    });
    let others = admins.filter(|m| m.user_id != user).count();
    let is_admin = members
        .iter()
        .any(|m| m.user_id == user && m.role == AgencyRole::AgencyAdmin);
    if is_admin && others == 0 {
        return Err(AppError::Conflict(
            "the last admin of an agency cannot be removed or demoted: make someone else admin first".into(),
        ));
    }
    Ok(())
}

/// Changes a member's role, recording the change.
pub async fn change_role(
    conn: &mut AsyncPgConnection,
    agency: AgencyId,
    user: UserId,
    role: AgencyRole,
    by: UserId,
) -> AppResult<(Membership, User)> {
    conn.transaction(async |conn| {
        if role != AgencyRole::AgencyAdmin {
            keep_an_admin(conn, agency, user).await?;
        }
        let before: Membership = memberships::table
            .find((user, agency))
            .select(Membership::as_select())
            .first(conn)
            .await
            .optional()?
            .ok_or_else(|| AppError::NotFound("the user is not a member of this agency".into()))?;
        let after: Membership = diesel::update(memberships::table.find((user, agency)))
            .set(memberships::role.eq(role))
            .returning(Membership::as_returning())
            .get_result(conn)
            .await?;
        if before.role != role {
            diesel::insert_into(membership_changes::table)
                .values(NewMembershipChange {
                    user_id: user,
                    agency_id: agency,
                    old_role: Some(before.role),
                    new_role: Some(role),
                    changed_by: Some(by),
                })
                .execute(conn)
                .await?;
        }
        let member = User::find(conn, user).await?.ok_or(diesel::NotFound)?;
        Ok((after, member))
    })
    .await
}

/// Removes a member (or withdraws an invitation), recording the removal.
pub async fn remove_member(
    conn: &mut AsyncPgConnection,
    agency: AgencyId,
    user: UserId,
    by: UserId,
) -> AppResult<()> {
    conn.transaction(async |conn| {
        keep_an_admin(conn, agency, user).await?;
        let removed: Option<Membership> = diesel::delete(memberships::table.find((user, agency)))
            .returning(Membership::as_returning())
            .get_result(conn)
            .await
            .optional()?;
        let removed = removed
            .ok_or_else(|| AppError::NotFound("the user is not a member of this agency".into()))?;
        diesel::insert_into(membership_changes::table)
            .values(NewMembershipChange {
                user_id: user,
                agency_id: agency,
                old_role: Some(removed.role),
                new_role: None,
                changed_by: Some(by),
            })
            .execute(conn)
            .await?;
        Ok(())
    })
    .await
}

/// A recorded change of a membership.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = membership_changes, check_for_backend(diesel::pg::Pg))]
pub struct RoleChange {
    /// The member.
    pub user_id: UserId,
    /// The agency.
    pub agency_id: AgencyId,
    /// The role before (none for a new member).
    pub old_role: Option<AgencyRole>,
    /// The role after (none for a removal).
    pub new_role: Option<AgencyRole>,
    /// Who made the change.
    pub changed_by: Option<UserId>,
    /// When.
    pub changed_at: DateTime<Utc>,
}

impl RoleChange {
    /// The membership changes of these agencies, oldest first.
    pub async fn of_agencies(
        conn: &mut &AsyncPgConnection,
        agencies: &[AgencyId],
    ) -> QueryResult<Vec<Self>> {
        if agencies.is_empty() {
            return Ok(Vec::new());
        }
        membership_changes::table
            .filter(membership_changes::agency_id.eq_any(agencies))
            .order(membership_changes::id)
            .select(Self::as_select())
            .load(conn)
            .await
    }
}
