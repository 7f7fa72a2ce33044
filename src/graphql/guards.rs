//! Guards: small structs that read the request's [`Viewer`] and ask it for a permission.

use async_graphql::{Context, ErrorExtensions, Guard};

use crate::auth::Viewer;
use crate::auth::permissions::{AgencyScope, Permission};

/// The request's viewer. The HTTP layer always provides one; a schema executed without it
/// (introspection in tests) sees an anonymous viewer.
pub fn viewer<'a>(ctx: &Context<'a>) -> &'a Viewer {
    static ANONYMOUS: Viewer = Viewer::Anonymous;
    ctx.data_opt::<Viewer>().unwrap_or(&ANONYMOUS)
}

/// Allows the field when the viewer holds `permission` in the agency.
pub struct Can {
    permission: Permission,
    scope: AgencyScope,
}

impl Can {
    /// The guard for `permission` in `scope`.
    pub fn in_agency(permission: Permission, scope: AgencyScope) -> Self {
        Self { permission, scope }
    }
}

impl Guard for Can {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        viewer(ctx)
            .require(self.permission, self.scope)
            .map_err(|error| error.extend())
    }
}

/// Allows the field for any signed-in viewer.
pub struct SignedIn;

impl Guard for SignedIn {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        viewer(ctx)
            .signed_in()
            .map(drop)
            .map_err(|error| error.extend())
    }
}
