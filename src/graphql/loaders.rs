//! Dataloaders: every relation between objects is fetched through here, batched into one
//! query per key kind and request. A fresh loader is made for each request, so nothing is
//! cached across requests or viewers.

use std::collections::HashMap;
use std::hash::Hash;

use async_graphql::dataloader::{DataLoader, Loader};

use super::Gql;
use crate::db::{Pool, PooledConnection};
use crate::models::agency::Agency;
use crate::models::ids::{AgencyId, UserId};
use crate::models::user::{Membership, User};

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
    async fn connection(&self) -> async_graphql::Result<PooledConnection<'_>> {
        self.pool.get().await.gql()
    }
}

/// Groups rows under the keys they belong to; every key gets an entry, empty when no row
/// matched, so that "nothing" is not mistaken for "not loaded".
fn group<K: Copy + Eq + Hash, V>(
    keys: &[K],
    rows: impl IntoIterator<Item = V>,
    key_of: impl Fn(&V) -> Option<K>,
) -> HashMap<K, Vec<V>> {
    let mut grouped: HashMap<K, Vec<V>> = keys.iter().map(|&key| (key, Vec::new())).collect();
    for row in rows {
        if let Some(key) = key_of(&row) {
            grouped.entry(key).or_default().push(row);
        }
    }
    grouped
}

impl Loader<AgencyId> for Db {
    type Value = Agency;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[AgencyId]) -> Result<HashMap<AgencyId, Agency>, Self::Error> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let mut conn = self.connection().await?;
        let agencies = Agency::by_ids(&mut conn, keys).await.gql()?;
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
        let children = Agency::children_of(&mut conn, &parents).await.gql()?;
        Ok(group(keys, children, |child| {
            child.super_agency_id.map(ChildrenOf)
        }))
    }
}

impl Loader<UserId> for Db {
    type Value = User;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[UserId]) -> Result<HashMap<UserId, User>, Self::Error> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let mut conn = self.connection().await?;
        let users = User::by_ids(&mut conn, keys).await.gql()?;
        Ok(users.into_iter().map(|user| (user.id, user)).collect())
    }
}

/// Key: a user's memberships.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MembershipsOf(pub UserId);

impl Loader<MembershipsOf> for Db {
    type Value = Vec<Membership>;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[MembershipsOf],
    ) -> Result<HashMap<MembershipsOf, Vec<Membership>>, Self::Error> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let users: Vec<UserId> = keys.iter().map(|key| key.0).collect();
        let mut conn = self.connection().await?;
        let memberships = Membership::of_users(&mut conn, &users).await.gql()?;
        Ok(group(keys, memberships, |membership| {
            Some(MembershipsOf(membership.user_id))
        }))
    }
}

/// Key: an agency's team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TeamOf(pub AgencyId);

impl Loader<TeamOf> for Db {
    type Value = Vec<(Membership, User)>;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[TeamOf],
    ) -> Result<HashMap<TeamOf, Vec<(Membership, User)>>, Self::Error> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let agencies: Vec<AgencyId> = keys.iter().map(|key| key.0).collect();
        let mut conn = self.connection().await?;
        let members = Membership::of_agencies(&mut conn, &agencies).await.gql()?;
        Ok(group(keys, members, |(membership, _)| {
            Some(TeamOf(membership.agency_id))
        }))
    }
}
