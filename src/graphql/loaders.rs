//! Dataloaders: every relation between objects is fetched through here, batched into one
//! query per key kind and request. A fresh loader is made for each request, so nothing is
//! cached across requests or viewers.

use std::collections::HashMap;

use async_graphql::ErrorExtensions;
use async_graphql::dataloader::{DataLoader, Loader};

use crate::db::Pool;
use crate::error::AppError;
use crate::models::agency::Agency;
use crate::models::ids::AgencyId;

/// The database behind the loaders; one per request.
pub struct Db {
    pool: Pool,
}

/// The per-request loader over the database.
pub type DbLoader = DataLoader<Db>;

/// A fresh loader for one request.
pub fn new_loader(pool: Pool) -> DbLoader {
    DataLoader::new(Db { pool }, tokio::spawn)
}

impl Db {
    async fn connection(&self) -> Result<crate::db::PooledConnection<'_>, async_graphql::Error> {
        self.pool
            .get()
            .await
            .map_err(|error| AppError::from(error).extend())
    }
}

fn db_error(error: diesel::result::Error) -> async_graphql::Error {
    AppError::from(error).extend()
}

impl Loader<AgencyId> for Db {
    type Value = Agency;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[AgencyId]) -> Result<HashMap<AgencyId, Agency>, Self::Error> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let mut conn = self.connection().await?;
        let agencies = Agency::by_ids(&mut conn, keys).await.map_err(db_error)?;
        Ok(agencies
            .into_iter()
            .map(|agency| (agency.id, agency))
            .collect())
    }
}

/// Key: the child agencies of a superagency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChildrenOf(pub AgencyId);

impl Loader<ChildrenOf> for Db {
    type Value = Vec<Agency>;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[ChildrenOf],
    ) -> Result<HashMap<ChildrenOf, Vec<Agency>>, Self::Error> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let parents: Vec<AgencyId> = keys.iter().map(|key| key.0).collect();
        let mut conn = self.connection().await?;
        let children = Agency::children_of(&mut conn, &parents)
            .await
            .map_err(db_error)?;
        let mut grouped: HashMap<ChildrenOf, Vec<Agency>> =
            keys.iter().map(|&key| (key, Vec::new())).collect();
        for child in children {
            if let Some(parent) = child.super_agency_id {
                grouped.entry(ChildrenOf(parent)).or_default().push(child);
            }
        }
        Ok(grouped)
    }
}
