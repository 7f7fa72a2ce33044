//! Users: the signed-in user (`me`) with their memberships.

use async_graphql::{Context, Object};

use super::Gql;
use super::agency::Agency;
use super::guards::{SignedIn, viewer};
use super::loaders::{DbLoader, MembershipsOf};
use super::scalars::Timestamp;
use crate::auth::permissions::Operation;
use crate::error::AppError;
use crate::models::enums::{AgencyRole, InvitationStatus};
use crate::models::ids::UserId;
use crate::models::user::{Membership, User};

/// The GraphQL view of the signed-in user.
pub struct CurrentUser(pub User);

/// The signed-in user: who they are and which agencies they belong to.
#[Object]
impl CurrentUser {
    /// Stable identifier of the user.
    async fn id(&self) -> async_graphql::ID {
        async_graphql::ID(self.0.id.to_string())
    }

    /// Full name.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// Email address, used to sign in.
    async fn email(&self) -> &str {
        &self.0.email
    }

    /// Whether the user is platform staff (the JUSTICE_COUNTS_ADMIN role), with every right
    /// in every agency.
    async fn is_platform_admin(&self) -> bool {
        self.0.is_platform_admin
    }

    /// The user's memberships, pending invitations included, ordered by agency.
    async fn memberships(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<AgencyMembership>> {
        let memberships = ctx
            .data_unchecked::<DbLoader>()
            .load_one(MembershipsOf(self.0.id))
            .await?
            .unwrap_or_default();
        // A token narrowed to some agencies shows only those.
        let allowed = |membership: &Membership| match viewer(ctx) {
            crate::auth::Viewer::User(user) => {
                user.token_allows(Operation::Read, Some(membership.agency_id))
            }
            crate::auth::Viewer::Anonymous => false,
        };
        Ok(memberships
            .into_iter()
            .filter(allowed)
            .map(AgencyMembership)
            .collect())
    }
}

/// The GraphQL view of a membership seen by its member.
pub struct AgencyMembership(pub Membership);

/// The signed-in user's membership in one agency.
#[Object]
impl AgencyMembership {
    /// The agency.
    async fn agency(&self, ctx: &Context<'_>) -> async_graphql::Result<Agency> {
        let loader = ctx.data_unchecked::<DbLoader>();
        let agency = loader.load_one(self.0.agency_id).await?;
        agency
            .map(Agency)
            .ok_or_else(|| AppError::NotFound("the agency no longer exists".into()).into_gql())
    }

    /// The user's role in the agency.
    async fn role(&self) -> AgencyRole {
        self.0.role
    }

    /// Whether the invitation was accepted; a pending one grants no rights yet.
    async fn invitation_status(&self) -> InvitationStatus {
        self.0.invitation_status
    }

    /// When the user last used the agency.
    async fn last_visit_at(&self) -> Option<Timestamp> {
        self.0.last_visit_at.map(Timestamp)
    }

    /// Whether the user receives email about the agency.
    async fn is_subscribed_to_emails(&self) -> bool {
        self.0.is_subscribed_to_emails
    }
}

/// Root fields about the signed-in user.
#[derive(Default)]
pub struct UserQuery;

#[Object]
impl UserQuery {
    /// The signed-in user. UNAUTHENTICATED without a token.
    #[graphql(guard = "SignedIn")]
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<CurrentUser> {
        let id: UserId = viewer(ctx).signed_in().gql()?.user_id;
        let user = ctx.data_unchecked::<DbLoader>().load_one(id).await?;
        user.map(CurrentUser)
            .ok_or_else(|| AppError::Unauthenticated("the user no longer exists".into()).into_gql())
    }
}
