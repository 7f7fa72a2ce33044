//! Who may do what: the role table, decided here and nowhere else.
//!
//! | permission | needs |
//! |---|---|
//! | [`Permission::ReadAgency`]: profile, reports (drafts too), datapoints, history, settings, team | READ_ONLY |
//! | [`Permission::SeeTeamEmails`] | AGENCY_ADMIN |
//! | [`Permission::EditReportData`]: enter and change values, save drafts | CONTRIBUTOR |
//! | [`Permission::PublishReports`]: publish, unpublish, upload spreadsheets | CONTRIBUTOR |
//! | [`Permission::ManageAgency`]: create reports, settings, invite and manage the team | AGENCY_ADMIN |
//! | [`Permission::AdministerPlatform`]: delete reports, create and link agencies, users | platform staff |
//!
//! Roles are held per agency and include the rights of lower roles; a superagency role
//! extends to the child agencies; platform staff hold every permission. On top of the role,
//! the access token's own checks (attenuation) must allow the operation.

use super::Viewer;
use crate::error::{AppError, AppResult};
use diesel_async::AsyncPgConnection;

use crate::models::agency::{Agency, Visibility};
use crate::models::enums::AgencyRole;
use crate::models::ids::AgencyId;

/// The kind of operation, as the access token's checks see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Reading non-public data.
    Read,
    /// Entering data and publishing it.
    Write,
    /// Managing agencies, settings, teams and the platform.
    Admin,
}

impl Operation {
    /// The name in `operation(...)` facts.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }
}

/// Something the role table allows or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Read the agency's non-public data.
    ReadAgency,
    /// See team members' email addresses.
    SeeTeamEmails,
    /// Enter and change report data, save drafts.
    EditReportData,
    /// Publish and unpublish reports, upload spreadsheets.
    PublishReports,
    /// Create reports, change settings, manage the team.
    ManageAgency,
    /// Platform-wide administration.
    AdministerPlatform,
}

impl Permission {
    fn minimum_role(self) -> Option<AgencyRole> {
        match self {
            Self::ReadAgency => Some(AgencyRole::ReadOnly),
            Self::EditReportData | Self::PublishReports => Some(AgencyRole::Contributor),
            Self::SeeTeamEmails | Self::ManageAgency => Some(AgencyRole::AgencyAdmin),
            Self::AdministerPlatform => None,
        }
    }

    /// The operation kind the token must allow.
    pub fn operation(self) -> Operation {
        match self {
            Self::ReadAgency | Self::SeeTeamEmails => Operation::Read,
            Self::EditReportData | Self::PublishReports => Operation::Write,
            Self::ManageAgency | Self::AdministerPlatform => Operation::Admin,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::ReadAgency => "read this agency's data",
            Self::SeeTeamEmails => "see team members' email addresses",
            Self::EditReportData => "enter or change report data",
            Self::PublishReports => "publish reports or upload data",
            Self::ManageAgency => "manage this agency's reports, settings and team",
            Self::AdministerPlatform => "administer the platform",
        }
    }
}

/// The agency a decision concerns, and whether the public may see that it exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgencyScope {
    /// The agency.
    pub id: AgencyId,
    /// Whether its dashboard is public.
    pub is_public: bool,
}

/// The answer for an agency the viewer may not know about: the same as for a missing one.
pub fn agency_not_found(id: AgencyId) -> AppError {
    AppError::NotFound(format!("no agency has id {id}"))
}

impl Viewer {
    /// The viewer's role in `agency`: their own or their superagency's; platform staff are
    /// treated as admins everywhere. Pending invitations grant nothing.
    pub fn role_in(&self, agency: AgencyId) -> Option<AgencyRole> {
        let Self::User(user) = self else { return None };
        if user.is_platform_admin {
            return Some(AgencyRole::AgencyAdmin);
        }
        user.roles.get(&agency).copied()
    }

    /// Whether the viewer may learn that `agency` exists and read its public profile.
    pub fn can_see_agency(&self, scope: AgencyScope) -> bool {
        scope.is_public || self.can(Permission::ReadAgency, scope)
    }

    /// The agencies the viewer may list: public ones and those whose data it may read, as
    /// its roles and its token's checks allow. Platform staff whose token is narrowed to some
    /// agencies see those, found among all agencies (the only case that reads the database).
    pub async fn agency_visibility(&self, conn: &mut AsyncPgConnection) -> AppResult<Visibility> {
        Ok(match self {
            Self::Anonymous => Visibility::PublicOnly,
            // No agency has id 0: a token that allows reading it is not narrowed by agency.
            Self::User(user)
                if user.is_platform_admin
                    && user.token_allows(Operation::Read, Some(AgencyId(0))) =>
            {
                Visibility::All
            }
            Self::User(user) if user.is_platform_admin => Visibility::PublicAndListed(
                Agency::all_ids(conn)
                    .await?
                    .into_iter()
                    .filter(|&agency| user.token_allows(Operation::Read, Some(agency)))
                    .collect(),
            ),
            Self::User(user) => Visibility::PublicAndListed(
                user.roles
                    .keys()
                    .copied()
                    .filter(|&agency| user.token_allows(Operation::Read, Some(agency)))
                    .collect(),
            ),
        })
    }

    /// Whether [`Viewer::require`] would succeed.
    pub fn can(&self, permission: Permission, scope: AgencyScope) -> bool {
        self.require(permission, scope).is_ok()
    }

    /// Succeeds when the viewer holds `permission` in the agency `scope`; otherwise the error
    /// to answer with: UNAUTHENTICATED for anonymous viewers, NOT_FOUND when the viewer may
    /// not know of the agency, FORBIDDEN otherwise.
    pub fn require(&self, permission: Permission, scope: AgencyScope) -> AppResult<()> {
        let Self::User(user) = self else {
            return Err(AppError::Unauthenticated(format!(
                "sign in to {}",
                permission.describe()
            )));
        };
        let role = self.role_in(scope.id);
        let allowed_by_role = match permission.minimum_role() {
            Some(minimum) => role.is_some_and(|role| role >= minimum),
            None => user.is_platform_admin,
        };
        let operation = permission.operation();
        let allowed_by_token = user.token_allows(operation, Some(scope.id));
        if allowed_by_role && allowed_by_token {
            return Ok(());
        }
        let readable = role.is_some() && user.token_allows(Operation::Read, Some(scope.id));
        if !scope.is_public && !readable {
            return Err(agency_not_found(scope.id));
        }
        if allowed_by_role {
            return Err(AppError::Forbidden(format!(
                "this access token does not allow you to {}",
                permission.describe()
            )));
        }
        Err(AppError::Forbidden(format!(
            "your role does not allow you to {}",
            permission.describe()
        )))
    }

    /// Succeeds for platform staff whose token allows administration of each of `agencies`
    /// (the agencies the operation changes: a token narrowed to some agencies administers
    /// those only).
    pub fn require_platform_admin_over(&self, agencies: &[AgencyId]) -> AppResult<()> {
        self.require_platform_admin()?;
        self.require_token_over(Operation::Admin, agencies)
    }

    /// Succeeds when the viewer's token allows `operation` on each of `agencies`: for work
    /// that reaches beyond the agency checked by role, such as a superagency's upload into
    /// its child agencies.
    pub fn require_token_over(&self, operation: Operation, agencies: &[AgencyId]) -> AppResult<()> {
        let Self::User(user) = self else {
            return Err(AppError::Unauthenticated("sign in first".into()));
        };
        match agencies
            .iter()
            .find(|&&agency| !user.token_allows(operation, Some(agency)))
        {
            Some(agency) => Err(AppError::Forbidden(format!(
                "this access token does not allow {} agency {agency}",
                match operation {
                    Operation::Read => "reading",
                    Operation::Write => "entering data for",
                    Operation::Admin => "administering",
                }
            ))),
            None => Ok(()),
        }
    }

    /// Succeeds for platform staff whose token allows administration.
    pub fn require_platform_admin(&self) -> AppResult<()> {
        let Self::User(user) = self else {
            return Err(AppError::Unauthenticated(
                "sign in to administer the platform".into(),
            ));
        };
        if !user.is_platform_admin {
            return Err(AppError::Forbidden(
                "only platform staff may do this".into(),
            ));
        }
        if !user.token_allows(Operation::Admin, None) {
            return Err(AppError::Forbidden(
                "this access token does not allow administration".into(),
            ));
        }
        Ok(())
    }
}
