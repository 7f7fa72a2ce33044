//! Uploading spreadsheets (the GraphQL multipart request), following their ingest, and
//! cancelling it.

use async_graphql::{Context, ID, Object, Subscription};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::guards::{SignedIn, viewer};
use super::scalars::File;
use super::spreadsheet::{Upload, UploadProgress};
use super::{Gql, agency_for, connection, parse_id};
use crate::auth::permissions::{Operation, Permission};
use crate::error::AppError;
use crate::events::EventBus;
use crate::http::subscriptions::SubscriptionSlots;
use crate::ingest::{self, NewUpload, Queue};
use crate::models::agency::Agency;
use crate::models::enums::{SpreadsheetStatus, System, ValueSource};
use crate::models::ids::SpreadsheetId;
use crate::models::spreadsheet::{self, Spreadsheet};

/// The upload with this id when the viewer holds `permission` in its agency; NOT_FOUND to
/// whoever may not read the agency, as for an upload that does not exist.
async fn upload_for(
    ctx: &Context<'_>,
    id: &ID,
    permission: Permission,
) -> async_graphql::Result<Spreadsheet> {
    let id: SpreadsheetId = parse_id(id, "upload").gql()?;
    let not_found = || AppError::NotFound(format!("no upload has id {id}")).into_gql();
    let mut conn = connection(ctx).await.gql()?;
    let upload = spreadsheet::find(&mut conn, id)
        .await
        .gql()?
        .ok_or_else(not_found)?;
    // Read directly, not through the request's loader: subscriptions have none.
    let agency = Agency::by_ids(&mut &**conn, &[upload.agency_id])
        .await
        .gql()?
        .pop()
        .ok_or_else(not_found)?;
    let viewer = viewer(ctx);
    if !viewer.can(Permission::ReadAgency, agency.scope()) {
        return Err(not_found());
    }
    viewer.require(permission, agency.scope()).gql()?;
    reaching_children(&mut conn, viewer, &agency, Operation::Read).await?;
    Ok(upload)
}

/// For a superagency's uploads, which write and hold its child agencies' values: the viewer's
/// token must allow `operation` on every child (a token narrowed to the superagency alone
/// reaches none of them).
pub(crate) async fn reaching_children(
    conn: &mut crate::db::PooledConnection<'_>,
    viewer: &crate::auth::Viewer,
    agency: &Agency,
    operation: Operation,
) -> async_graphql::Result<()> {
    if !agency.is_superagency {
        return Ok(());
    }
    let children: Vec<crate::models::ids::AgencyId> =
        Agency::children_of(&mut &**conn, &[agency.id])
            .await
            .map_err(AppError::from)
            .gql()?
            .into_iter()
            .map(|child| child.id)
            .collect();
    viewer.require_token_over(operation, &children).gql()
}

/// Reading uploads.
#[derive(Default)]
pub struct UploadQuery;

#[Object]
impl UploadQuery {
    /// One upload, with its progress, messages and result (members of its agency); NOT_FOUND
    /// when there is no such upload or the viewer may not see it.
    #[graphql(guard = "SignedIn")]
    async fn upload(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The upload.")] id: ID,
    ) -> async_graphql::Result<Upload> {
        Ok(Upload(upload_for(ctx, &id, Permission::ReadAgency).await?))
    }
}

/// Uploading and cancelling.
#[derive(Default)]
pub struct UploadMutation;

#[Object]
impl UploadMutation {
    /// Uploads a spreadsheet (CSV, XLSX or XLS) of an agency's data for one system, sent as a
    /// GraphQL multipart request (with the `Apollo-Require-Preflight` header). The file is
    /// stored and its ingest queued; the answer comes at once, and `upload(id)` or the
    /// `uploadProgress` subscription follow the ingest. With `dryRun`, nothing is written:
    /// the result says what the upload would change. For contributors of the agency; a
    /// superagency's contributors upload their child agencies' rows (an `agency` column).
    #[graphql(guard = "SignedIn")]
    async fn upload_spreadsheet(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The uploading agency.")] agency_id: ID,
        #[graphql(desc = "The system the file reports for.")] system: System,
        #[graphql(desc = "The file.")] file: File,
        #[graphql(desc = "Compare with the stored data only; write nothing (default: false).")]
        dry_run: Option<bool>,
    ) -> async_graphql::Result<Upload> {
        let agency = agency_for(ctx, &agency_id, Permission::PublishReports).await?;
        {
            // A superagency's rows go to its child agencies: the token must allow entering
            // their data.
            let mut conn = connection(ctx).await.gql()?;
            reaching_children(&mut conn, viewer(ctx), &agency, Operation::Write).await?;
        }
        let value = file.value(ctx)?;
        let upload = NewUpload {
            agency: agency.id,
            system,
            file_name: value.filename.clone(),
            user: viewer(ctx).user_id(),
            source: ValueSource::BulkUpload,
            dry_run: dry_run.unwrap_or(false),
        };
        let content = tokio::fs::File::from_std(value.content);
        let mut conn = connection(ctx).await.gql()?;
        let id = ingest::create(&mut conn, &upload, content, Queue::Job { drop_path: None })
            .await
            .gql()?;
        let stored = spreadsheet::find(&mut conn, id)
            .await
            .gql()?
            .ok_or_else(|| AppError::NotFound(format!("no upload has id {id}")).into_gql())?;
        Ok(Upload(stored))
    }

    /// Cancels an upload whose ingest has not ended: nothing of it is saved. An ingest that
    /// is already being applied finishes. For contributors of the agency.
    #[graphql(guard = "SignedIn")]
    async fn cancel_upload(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The upload.")] id: ID,
    ) -> async_graphql::Result<Upload> {
        let upload = upload_for(ctx, &id, Permission::PublishReports).await?;
        let mut conn = connection(ctx).await.gql()?;
        let asked = ingest::request_cancel(&mut conn, upload.id).await.gql()?;
        if !asked {
            return Err(AppError::Conflict(format!(
                "upload {} has already ended ({:?}); there is nothing to cancel",
                upload.id, upload.status
            ))
            .into_gql());
        }
        let stored = spreadsheet::find(&mut conn, upload.id)
            .await
            .gql()?
            .ok_or_else(|| {
                AppError::NotFound(format!("no upload has id {}", upload.id)).into_gql()
            })?;
        Ok(Upload(stored))
    }
}

/// Following uploads.
#[derive(Default)]
pub struct UploadSubscription;

#[Subscription]
impl UploadSubscription {
    /// The progress of an upload's ingest from now on — its current state first — until it
    /// ends (ingested, errored or cancelled). For members of its agency.
    async fn upload_progress(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The upload.")] id: ID,
    ) -> async_graphql::Result<impl Stream<Item = UploadProgress> + use<>> {
        let upload = upload_for(ctx, &id, Permission::ReadAgency).await?;
        let slot = ctx
            .data_opt::<SubscriptionSlots>()
            .map(SubscriptionSlots::take)
            .transpose()
            .gql()?;
        // Subscribe before reading the current state, so no change falls in between.
        let receiver = ctx.data_unchecked::<EventBus>().uploads();
        let mut conn = connection(ctx).await.gql()?;
        let current = ingest::progress(&mut conn, upload.id)
            .await
            .gql()?
            .ok_or_else(|| {
                AppError::NotFound(format!("no upload has id {}", upload.id)).into_gql()
            })?;
        drop(conn);
        let wanted = upload.id.0;
        let ended = |status: SpreadsheetStatus| {
            matches!(
                status,
                SpreadsheetStatus::Ingested
                    | SpreadsheetStatus::Errored
                    | SpreadsheetStatus::Cancelled
            )
        };
        Ok(futures_util::stream::unfold(
            (Some(current), receiver, slot, false),
            move |(first, mut receiver, slot, done)| async move {
                if done {
                    return None;
                }
                if let Some(first) = first {
                    let end = ended(first.status);
                    return Some((UploadProgress(first), (None, receiver, slot, end)));
                }
                loop {
                    match receiver.recv().await {
                        Ok(event) if event.spreadsheet_id == wanted => {
                            let end = ended(event.status);
                            return Some((UploadProgress(event), (None, receiver, slot, end)));
                        }
                        Ok(_) | Err(RecvError::Lagged(_)) => continue,
                        Err(RecvError::Closed) => return None,
                    }
                }
            },
        ))
    }
}
