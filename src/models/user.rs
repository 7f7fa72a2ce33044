//! Users and their memberships in agencies.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::db::schema::{membership_changes, memberships, users};
use crate::models::enums::{AgencyRole, InvitationStatus};
use crate::models::ids::{AgencyId, UserId};

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
