//! Agencies, their settings and jurisdictions.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::auth::permissions::AgencyScope;
use crate::db::schema::{agencies, agency_jurisdictions, agency_settings};
use crate::error::{AppError, AppResult};
use crate::models::enums::{AgencySettingKind, JurisdictionKind, System};
use crate::models::ids::AgencyId;
use crate::models::page::{Page, Slice};

/// An agency that reports metrics.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = agencies, check_for_backend(diesel::pg::Pg))]
pub struct Agency {
    /// Its id.
    pub id: AgencyId,
    /// Its name (not unique).
    pub name: String,
    /// State code such as `us_ca`.
    pub state_code: String,
    /// County code such as `us_ca_sacramento`.
    pub county_code: Option<String>,
    /// The systems it reports for. A check constraint keeps NULLs out of the array.
    pub systems: Vec<Option<System>>,
    /// Whether it is a superagency.
    pub is_superagency: bool,
    /// The superagency it belongs to.
    pub super_agency_id: Option<AgencyId>,
    /// Whether its published data appears on the public dashboard.
    pub is_dashboard_enabled: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// Which agencies a listing returns. Empty fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct AgencyFilter {
    /// Only agencies of this state.
    pub state_code: Option<String>,
    /// Only agencies reporting for this system.
    pub system: Option<System>,
    /// Only agencies whose name contains this text, ignoring case.
    pub name_contains: Option<String>,
    /// Which agencies the viewer may see at all.
    pub visible: Visibility,
}

/// The agencies a viewer may see.
#[derive(Debug, Clone, Default)]
pub enum Visibility {
    /// Every agency (platform staff).
    All,
    /// Agencies with a public dashboard only (anonymous viewers).
    #[default]
    PublicOnly,
    /// Agencies with a public dashboard, and the listed ones.
    PublicAndListed(Vec<AgencyId>),
}

fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// A position in the order of agencies: by name, then id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgencyKey {
    /// The agency's name.
    pub name: String,
    /// The agency's id.
    pub id: AgencyId,
}

fn filtered(filter: &AgencyFilter) -> agencies::BoxedQuery<'static, diesel::pg::Pg> {
    let mut query = agencies::table.into_boxed();
    if let Some(state) = &filter.state_code {
        query = query.filter(agencies::state_code.eq(state.to_lowercase()));
    }
    if let Some(system) = filter.system {
        query = query.filter(agencies::systems.contains(vec![Some(system)]));
    }
    if let Some(text) = &filter.name_contains {
        query = query.filter(agencies::name.ilike(format!("%{}%", escape_like(text))));
    }
    match &filter.visible {
        Visibility::All => {}
        Visibility::PublicOnly => query = query.filter(agencies::is_dashboard_enabled),
        Visibility::PublicAndListed(ids) => {
            query =
                query.filter(agencies::is_dashboard_enabled.or(agencies::id.eq_any(ids.clone())));
        }
    }
    query
}

impl Agency {
    /// What a permission decision about this agency needs to know.
    pub fn scope(&self) -> AgencyScope {
        AgencyScope {
            id: self.id,
            is_public: self.is_dashboard_enabled,
        }
    }

    /// The systems it reports for.
    pub fn systems(&self) -> Vec<System> {
        self.systems.iter().flatten().copied().collect()
    }

    /// Its position in list order.
    pub fn key(&self) -> AgencyKey {
        AgencyKey {
            name: self.name.clone(),
            id: self.id,
        }
    }

    /// One page of the agencies matching `filter`, ordered by name then id.
    pub async fn page(
        conn: &mut AsyncPgConnection,
        filter: &AgencyFilter,
        slice: Slice<AgencyKey>,
    ) -> QueryResult<Page<Self>> {
        let mut query = filtered(filter);
        if let Some(after) = &slice.after {
            query = query.filter(
                agencies::name.gt(after.name.clone()).or(agencies::name
                    .eq(after.name.clone())
                    .and(agencies::id.gt(after.id))),
            );
        }
        if let Some(before) = &slice.before {
            query = query.filter(
                agencies::name.lt(before.name.clone()).or(agencies::name
                    .eq(before.name.clone())
                    .and(agencies::id.lt(before.id))),
            );
        }
        query = if slice.backwards {
            query.order((agencies::name.desc(), agencies::id.desc()))
        } else {
            query.order((agencies::name.asc(), agencies::id.asc()))
        };
        let rows: Vec<Self> = query.limit(slice.limit + 1).load(conn).await?;
        Ok(Page::from_overfetched(rows, &slice))
    }

    /// How many agencies match `filter`.
    pub async fn count(conn: &mut AsyncPgConnection, filter: &AgencyFilter) -> QueryResult<i64> {
        filtered(filter).count().get_result(conn).await
    }

    /// The ids of every agency, in id order.
    pub async fn all_ids(conn: &mut AsyncPgConnection) -> QueryResult<Vec<AgencyId>> {
        agencies::table
            .select(agencies::id)
            .order(agencies::id)
            .load(conn)
            .await
    }

    /// The agencies with these ids, in no particular order.
    pub async fn by_ids(conn: &mut &AsyncPgConnection, ids: &[AgencyId]) -> QueryResult<Vec<Self>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        agencies::table
            .filter(agencies::id.eq_any(ids))
            .select(Self::as_select())
            .load(conn)
            .await
    }

    /// The child agencies of these superagencies, ordered by name.
    pub async fn children_of(
        conn: &mut &AsyncPgConnection,
        parents: &[AgencyId],
    ) -> QueryResult<Vec<Self>> {
        if parents.is_empty() {
            return Ok(Vec::new());
        }
        agencies::table
            .filter(agencies::super_agency_id.eq_any(parents))
            .select(Self::as_select())
            .order((agencies::name, agencies::id))
            .load(conn)
            .await
    }
}

/// A new agency.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = agencies)]
pub struct NewAgency {
    /// See [`Agency::name`].
    pub name: String,
    /// See [`Agency::state_code`].
    pub state_code: String,
    /// See [`Agency::county_code`].
    pub county_code: Option<String>,
    /// See [`Agency::systems`].
    pub systems: Vec<Option<System>>,
    /// See [`Agency::is_superagency`].
    pub is_superagency: bool,
    /// See [`Agency::super_agency_id`].
    pub super_agency_id: Option<AgencyId>,
    /// See [`Agency::is_dashboard_enabled`].
    pub is_dashboard_enabled: bool,
}

impl NewAgency {
    /// Inserts the agency and returns its id.
    pub async fn insert(&self, conn: &mut AsyncPgConnection) -> QueryResult<AgencyId> {
        diesel::insert_into(agencies::table)
            .values(self)
            .returning(agencies::id)
            .get_result(conn)
            .await
    }
}

/// An agency setting of one kind.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = agency_settings)]
pub struct NewAgencySetting {
    /// The agency.
    pub agency_id: AgencyId,
    /// The kind of setting.
    pub kind: AgencySettingKind,
    /// Its value.
    pub value: String,
}

/// A census area included in or excluded from an agency's jurisdiction.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = agency_jurisdictions)]
pub struct NewJurisdiction {
    /// The agency.
    pub agency_id: AgencyId,
    /// The census geoid.
    pub geoid: String,
    /// Included or excluded.
    pub kind: JurisdictionKind,
}

/// A stored agency setting.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = agency_settings, check_for_backend(diesel::pg::Pg))]
pub struct AgencySetting {
    /// The agency.
    pub agency_id: AgencyId,
    /// The kind of setting.
    pub kind: AgencySettingKind,
    /// Its value.
    pub value: String,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl AgencySetting {
    /// The settings of these agencies, by kind.
    pub async fn of_agencies(
        conn: &mut &AsyncPgConnection,
        agencies: &[AgencyId],
    ) -> QueryResult<Vec<Self>> {
        if agencies.is_empty() {
            return Ok(Vec::new());
        }
        agency_settings::table
            .filter(agency_settings::agency_id.eq_any(agencies))
            .order((agency_settings::agency_id, agency_settings::kind))
            .select(Self::as_select())
            .load(conn)
            .await
    }
}

/// A census area included in or excluded from a jurisdiction.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = agency_jurisdictions, check_for_backend(diesel::pg::Pg))]
pub struct Jurisdiction {
    /// The agency.
    pub agency_id: AgencyId,
    /// The census geoid.
    pub geoid: String,
    /// Included or excluded.
    pub kind: JurisdictionKind,
}

impl Jurisdiction {
    /// The jurisdictions of these agencies, by geoid.
    pub async fn of_agencies(
        conn: &mut &AsyncPgConnection,
        agencies: &[AgencyId],
    ) -> QueryResult<Vec<Self>> {
        if agencies.is_empty() {
            return Ok(Vec::new());
        }
        agency_jurisdictions::table
            .filter(agency_jurisdictions::agency_id.eq_any(agencies))
            .order((agency_jurisdictions::agency_id, agency_jurisdictions::geoid))
            .select(Self::as_select())
            .load(conn)
            .await
    }
}

/// Sets (or with `None` removes) agency settings and, when given, replaces the
/// jurisdictions, in one transaction.
pub async fn change_profile(
    conn: &mut AsyncPgConnection,
    agency: AgencyId,
    settings: &[(AgencySettingKind, Option<String>)],
    jurisdictions: Option<&[(String, JurisdictionKind)]>,
) -> AppResult<()> {
    use diesel_async::AsyncConnection;
    if let Some(jurisdictions) = jurisdictions {
        let mut seen = std::collections::HashSet::new();
        if let Some((geoid, _)) = jurisdictions.iter().find(|(geoid, _)| !seen.insert(geoid)) {
            return Err(AppError::BadUserInput(format!(
                "the jurisdiction {geoid:?} is listed more than once"
            )));
        }
    }
    conn.transaction(async |conn| {
        for (kind, value) in settings {
            match value {
                Some(value) => {
                    diesel::insert_into(agency_settings::table)
                        .values(NewAgencySetting {
                            agency_id: agency,
                            kind: *kind,
                            value: value.clone(),
                        })
                        .on_conflict((agency_settings::agency_id, agency_settings::kind))
                        .do_update()
                        .set((
                            agency_settings::value.eq(value),
                            agency_settings::updated_at.eq(diesel::dsl::now),
                        ))
                        .execute(conn)
                        .await?;
                }
                None => {
                    diesel::delete(agency_settings::table.find((agency, *kind)))
                        .execute(conn)
                        .await?;
                }
            }
        }
        if let Some(jurisdictions) = jurisdictions {
            diesel::delete(
                agency_jurisdictions::table.filter(agency_jurisdictions::agency_id.eq(agency)),
            )
            .execute(conn)
            .await?;
            let rows: Vec<NewJurisdiction> = jurisdictions
                .iter()
                .map(|(geoid, kind)| NewJurisdiction {
                    agency_id: agency,
                    geoid: geoid.clone(),
                    kind: *kind,
                })
                .collect();
            diesel::insert_into(agency_jurisdictions::table)
                .values(&rows)
                .execute(conn)
                .await?;
        }
        Ok::<_, AppError>(())
    })
    .await
}

/// Makes `children` child agencies of `parent`, all or none: NOT_FOUND (and nothing changed)
/// when one of them does not exist; the database refuses a parent that is not a superagency.
pub async fn link_children(
    conn: &mut AsyncPgConnection,
    parent: AgencyId,
    children: &[AgencyId],
) -> AppResult<usize> {
    let mut distinct = children.to_vec();
    distinct.sort_unstable_by_key(|id| id.0);
    distinct.dedup();
    conn.transaction(async |conn| {
        let linked = diesel::update(agencies::table.filter(agencies::id.eq_any(&distinct)))
            .set(agencies::super_agency_id.eq(parent))
            .execute(conn)
            .await?;
        if linked != distinct.len() {
            return Err(AppError::NotFound(
                "some of the child agencies do not exist".into(),
            ));
        }
        Ok(linked)
    })
    .await
}

/// Enables or disables an agency's public dashboard.
pub async fn set_dashboard(
    conn: &mut AsyncPgConnection,
    agency: AgencyId,
    enabled: bool,
) -> QueryResult<Agency> {
    diesel::update(agencies::table.find(agency))
        .set(agencies::is_dashboard_enabled.eq(enabled))
        .returning(Agency::as_returning())
        .get_result(conn)
        .await
}
