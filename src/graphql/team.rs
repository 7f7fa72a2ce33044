//! An agency's team: members with their roles, and invitations.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};

use super::guards::{Can, SignedIn, viewer};
use super::loaders::{DbLoader, TeamOf};
use super::scalars::Timestamp;
use super::session::{SessionPayload, client_address, open_session};
use super::{Gql, agency_for, auth_config, connection, parse_id};
use crate::auth::permissions::{AgencyScope, Permission};
use crate::auth::secrets;
use crate::error::AppError;
use crate::models::agency::Agency;
use crate::models::enums::{AgencyRole, InvitationStatus};
use crate::models::ids::UserId;
use crate::models::user::{self, Membership, User};
use diesel_async::AsyncConnection;

/// Prefix of invitation codes.
const INVITATION_PREFIX: &str = "jci_";

/// The GraphQL view of a member of an agency's team.
pub struct TeamMember {
    membership: Membership,
    user: User,
    scope: AgencyScope,
}

impl TeamMember {
    /// A member of the agency `scope`.
    pub fn new(membership: Membership, user: User, scope: AgencyScope) -> Self {
        Self {
            membership,
            user,
            scope,
        }
    }
}

/// A member of an agency's team, or someone invited to it.
#[Object]
impl TeamMember {
    /// Stable identifier of the user.
    async fn user_id(&self) -> ID {
        ID(self.user.id.to_string())
    }

    /// Full name.
    async fn name(&self) -> &str {
        &self.user.name
    }

    /// Email address. Visible to the agency's admins and platform staff only: FORBIDDEN for
    /// other members.
    #[graphql(guard = "Can::in_agency(Permission::SeeTeamEmails, self.scope)")]
    async fn email(&self) -> &str {
        &self.user.email
    }

    /// The member's role in the agency.
    async fn role(&self) -> AgencyRole {
        self.membership.role
    }

    /// Whether the member accepted the invitation.
    async fn invitation_status(&self) -> InvitationStatus {
        self.membership.invitation_status
    }

    /// When the member last used the agency.
    async fn last_visit_at(&self) -> Option<Timestamp> {
        self.membership.last_visit_at.map(Timestamp)
    }

    /// When the member was invited.
    async fn invited_at(&self) -> Timestamp {
        Timestamp(self.membership.created_at)
    }
}

/// The members of an agency's team, ordered by name (for `Agency.team`).
pub async fn team_of(ctx: &Context<'_>, agency: &Agency) -> async_graphql::Result<Vec<TeamMember>> {
    let members = ctx
        .data_unchecked::<DbLoader>()
        .load_one(TeamOf(agency.id))
        .await?
        .unwrap_or_default();
    let scope = agency.scope();
    Ok(members
        .into_iter()
        .map(|(membership, user)| TeamMember::new(membership, user, scope))
        .collect())
}

/// Who to invite, and as what.
#[derive(InputObject)]
pub struct InviteMemberInput {
    /// The agency to invite into.
    pub agency_id: ID,
    /// The invitee's email address.
    pub email: String,
    /// The invitee's name, used when the email has no account yet.
    pub name: String,
    /// The role the invitee will hold once they accept.
    pub role: AgencyRole,
}

/// A new invitation.
#[derive(SimpleObject)]
pub struct InvitationPayload {
    /// The one-time code the invitee gives to `acceptInvitation`. Shown only here: pass it on
    /// to the invitee (this server sends no mail).
    pub invitation_code: String,
    /// The pending member.
    pub member: TeamMember,
}

/// A member's new role.
#[derive(InputObject)]
pub struct ChangeRoleInput {
    /// The agency.
    pub agency_id: ID,
    /// The member's user id.
    pub user_id: ID,
    /// The new role.
    pub role: AgencyRole,
}

/// A member to remove.
#[derive(InputObject)]
pub struct RemoveMemberInput {
    /// The agency.
    pub agency_id: ID,
    /// The member's user id.
    pub user_id: ID,
}

/// The agency and member a team mutation concerns, once the viewer may manage the team.
/// This process forgets the member's credentials at once; the others when the database's
/// notification arrives.
fn forget(ctx: &Context<'_>, member: UserId) {
    auth_config(ctx).credentials.forget_user(member);
}

async fn team_target(
    ctx: &Context<'_>,
    agency_id: &ID,
    user_id: &ID,
) -> async_graphql::Result<(Agency, UserId, UserId)> {
    let member: UserId = parse_id(user_id, "user").gql()?;
    let agency = agency_for(ctx, agency_id, Permission::ManageAgency).await?;
    Ok((agency, member, viewer(ctx).signed_in().gql()?.user_id))
}

/// An invitation code and the password to use from now on.
#[derive(InputObject)]
pub struct AcceptInvitationInput {
    /// The code from `inviteMember`.
    pub code: String,
    /// The password to choose (at least ten characters); for an account that already has a
    /// password, that password.
    pub password: String,
}

/// Mutations about teams.
#[derive(Default)]
pub struct TeamMutation;

#[Object]
impl TeamMutation {
    /// Invites an email address into an agency with a role (agency admins). The membership is
    /// PENDING until the invitee accepts with the returned code. CONFLICT when the address is
    /// a member already.
    #[graphql(guard = "SignedIn")]
    async fn invite_member(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Who to invite, and as what.")] input: InviteMemberInput,
    ) -> async_graphql::Result<InvitationPayload> {
        let agency = agency_for(ctx, &input.agency_id, Permission::ManageAgency).await?;
        let viewer = viewer(ctx);
        let email = input.email.trim();
        if !email.contains('@') || email.chars().any(char::is_whitespace) {
            return Err(
                AppError::BadUserInput(format!("{email:?} is not an email address")).into_gql(),
            );
        }
        if input.name.trim().is_empty() {
            return Err(AppError::BadUserInput("the invitee's name is required".into()).into_gql());
        }
        let inviter = viewer.signed_in().gql()?.user_id;
        let code = secrets::generate(INVITATION_PREFIX);
        let mut conn = connection(ctx).await.gql()?;
        let (membership, user) = user::invite(
            &mut conn,
            agency.id,
            email,
            &input.name,
            input.role,
            &secrets::digest(&code),
            inviter,
        )
        .await
        .gql()?;
        Ok(InvitationPayload {
            invitation_code: code,
            member: TeamMember::new(membership, user, agency.scope()),
        })
    }

    /// Changes a member's role (agency admins), recorded in the team history. CONFLICT when
    /// it would leave the agency without an admin.
    #[graphql(guard = "SignedIn")]
    async fn change_member_role(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The member and the new role.")] input: ChangeRoleInput,
    ) -> async_graphql::Result<TeamMember> {
        let (agency, member, by) = team_target(ctx, &input.agency_id, &input.user_id).await?;
        let mut conn = connection(ctx).await.gql()?;
        let (membership, user) = user::change_role(&mut conn, agency.id, member, input.role, by)
            .await
            .gql()?;
        forget(ctx, member);
        Ok(TeamMember::new(membership, user, agency.scope()))
    }

    /// Removes a member or withdraws an invitation (agency admins), recorded in the team
    /// history. CONFLICT when it would leave the agency without an admin. Returns true.
    #[graphql(guard = "SignedIn")]
    async fn remove_member(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The member to remove.")] input: RemoveMemberInput,
    ) -> async_graphql::Result<bool> {
        let (agency, member, by) = team_target(ctx, &input.agency_id, &input.user_id).await?;
        let mut conn = connection(ctx).await.gql()?;
        user::remove_member(&mut conn, agency.id, member, by)
            .await
            .gql()?;
        forget(ctx, member);
        Ok(true)
    }

    /// Accepts an invitation with its one-time code and signs the invitee in. The invitee
    /// chooses their password here unless their account has one already; an account invited
    /// by several agencies chooses it with the invitation that created it, and accepts the
    /// others with that password.
    async fn accept_invitation(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The code and the password.")] input: AcceptInvitationInput,
    ) -> async_graphql::Result<SessionPayload> {
        let config = auth_config(ctx);
        // Guessing the password of an invited account that has one is a sign-in attempt.
        config.throttle.attempt_from(client_address(ctx)).gql()?;
        let mut conn = connection(ctx).await.gql()?;
        // One transaction: the code is spent only with the session it opens.
        conn.transaction(async |conn| {
            let user = user::accept_invitation(
                conn,
                &config.hasher,
                &secrets::digest(input.code.trim()),
                &input.password,
                |email| config.throttle.attempt_on(email),
            )
            .await?;
            open_session(conn, config, user).await
        })
        .await
        .gql()
    }
}
