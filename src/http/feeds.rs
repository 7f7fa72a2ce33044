//! Data feeds over plain HTTP: `GET /feed/{agency}.csv` (or `.jsonl`) for anyone — published
//! values of agencies with a public dashboard — and `GET /agencies/{id}/datapoints.csv`
//! (`.jsonl`, or `Accept: application/x-ndjson`; `.xlsx` in the bulk-upload layout) for the
//! agency's members, drafts included.
//!
//! Feeds stream as PostgreSQL writes them, carry `ETag` and `Last-Modified` (a matching
//! `If-None-Match` is answered 304 without opening the feed; `If-Modified-Since` is not
//! honoured, see [`export::version`]), and give
//! the cursor of their snapshot in `Feed-Cursor` and in a `Link: <…>; rel="next"` header:
//! `?since=<cursor>` then returns only what changed after it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};

use super::AppState;
use super::files::{disposition, error_response, member_agency, viewer};
use crate::auth::permissions::agency_not_found;
use crate::error::AppError;
use crate::export::{self, Audience, Cursor, FeedQuery, FeedVersion, Format};
use crate::limits::{MAX_DATE, MIN_DATE, RETRY_AFTER_UNAVAILABLE, log_refusal};
use crate::models::agency::Agency;
use crate::models::enums::System;
use crate::models::ids::AgencyId;

/// The header with the cursor of a feed's snapshot.
pub const FEED_CURSOR: &str = "feed-cursor";
/// Rows gathered into one chunk of the response body.
const CHUNK_ROWS: usize = 512;
/// Longest query string a feed reads, in bytes.
const MAX_QUERY_BYTES: usize = 8192;

/// The query string of a feed.
#[derive(Debug, Default)]
struct Filters {
    metric: Option<String>,
    system: Option<System>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    since: Option<Cursor>,
    single_page: bool,
}

/// A day (`2024-03-01`) or a month (`2024-03`, its first day), within the API's dates.
fn day(name: &str, text: &str) -> Result<NaiveDate, AppError> {
    let parsed = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d"));
    match parsed {
        Ok(day) if (MIN_DATE..=MAX_DATE).contains(&day) => Ok(day),
        _ => Err(AppError::BadUserInput(format!(
            "`{name}` is a day (YYYY-MM-DD) or a month (YYYY-MM) between {MIN_DATE} and {MAX_DATE}"
        ))),
    }
}

impl Filters {
    /// Reads the query string; unknown or repeated parameters are refused, not ignored.
    fn parse(uri: &Uri, pairs: Vec<(String, String)>) -> Result<Self, AppError> {
        if uri
            .query()
            .is_some_and(|query| query.len() > MAX_QUERY_BYTES)
        {
            log_refusal("feed_query_bytes", "");
            return Err(AppError::BadUserInput(
                "the query string is too long".into(),
            ));
        }
        let mut filters = Self::default();
        let mut seen: Vec<String> = Vec::new();
        for (name, value) in pairs {
            if seen.contains(&name) {
                return Err(AppError::BadUserInput(format!("`{name}` is given twice")));
            }
            match name.as_str() {
                "metric" => filters.metric = Some(value.to_uppercase()),
                "system" => {
                    filters.system =
                        Some(System::from_key(&value.to_uppercase()).ok_or_else(|| {
                            AppError::BadUserInput(format!("{value:?} is not a system"))
                        })?);
                }
                "from" => filters.from = Some(day("from", &value)?),
                "to" => filters.to = Some(day("to", &value)?),
                "since" => filters.since = Some(Cursor::decode(&value)?),
                "singlePage" => {
                    filters.single_page = match value.as_str() {
                        "" | "true" | "1" => true,
                        "false" | "0" => false,
                        _ => {
                            return Err(AppError::BadUserInput(
                                "`singlePage` is true or false".into(),
                            ));
                        }
                    }
                }
                _ => {
                    return Err(AppError::BadUserInput(format!(
                        "unknown parameter `{name}`: feeds take metric, system, from, to and since"
                    )));
                }
            }
            seen.push(name);
        }
        Ok(filters)
    }

    fn query(self, audience: Audience, agency: AgencyId) -> FeedQuery {
        FeedQuery {
            audience,
            agencies: vec![agency],
            metric: self.metric,
            system: self.system,
            from: self.from,
            to: self.to,
            since: self.since,
        }
    }
}

fn agency_id(text: &str) -> Result<AgencyId, AppError> {
    text.parse()
        .ok()
        .filter(|&id| id > 0)
        .map(AgencyId)
        .ok_or_else(|| AppError::BadUserInput(format!("{text:?} is not an agency id")))
}

/// The HTTP date of a time (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn http_date(time: DateTime<Utc>) -> String {
    time.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// Whether the client's copy is current: `If-None-Match` against the entity tag (weak
/// comparison, as for GET). A date cannot say it (a transaction that began before the
/// client's copy may commit after it), so `If-Modified-Since` gets the feed.
fn not_modified(headers: &HeaderMap, version: &FeedVersion) -> bool {
    let Some(tags) = headers.get(header::IF_NONE_MATCH) else {
        return false;
    };
    let ours = version.etag.trim_start_matches("W/");
    tags.to_str().is_ok_and(|tags| {
        tags.split(',')
            .map(|tag| tag.trim())
            .any(|tag| tag == "*" || tag.trim_start_matches("W/") == ours)
    })
}

fn cache_headers(audience: Audience, version: &FeedVersion, max_age: Duration) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let cache_control = match audience {
        Audience::Public => format!("public, max-age={}", max_age.as_secs()),
        Audience::Members => "private, no-cache".to_owned(),
    };
    for (name, value) in [
        (header::CACHE_CONTROL, Some(cache_control)),
        (header::ETAG, Some(version.etag.clone())),
        (header::LAST_MODIFIED, version.last_modified.map(http_date)),
    ] {
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(name, value);
        }
    }
    if audience == Audience::Members {
        headers.insert(
            header::VARY,
            HeaderValue::from_static("Accept, Authorization"),
        );
    }
    headers
}

/// Public feeds being downloaded, by client address (counted as the rate limits count them).
#[derive(Debug, Default)]
pub struct FeedClients(std::sync::Mutex<HashMap<IpAddr, usize>>);

/// A public feed's place among its address's, given back when dropped.
struct FeedSlot {
    clients: Arc<FeedClients>,
    address: IpAddr,
}

impl FeedClients {
    fn take(self: &Arc<Self>, address: IpAddr, max: usize) -> Result<FeedSlot, AppError> {
        let mut open = self
            .0
            .lock()
            .map_err(|_| AppError::internal(anyhow::anyhow!("feed count poisoned")))?;
        let count = open.entry(address).or_default();
        if *count >= max {
            log_refusal("max_feeds_per_address", &address.to_string());
            return Err(AppError::RateLimited {
                message: format!("at most {max} feeds may be downloaded at once from one address"),
                retry_after: 5,
            });
        }
        *count += 1;
        Ok(FeedSlot {
            clients: self.clone(),
            address,
        })
    }
}

impl Drop for FeedSlot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.clients.0.lock()
            && let Some(count) = open.get_mut(&self.address)
        {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

/// A feed's body that ends, dropping `held` (its place and its database connection), when
/// the client has not taken the next chunk for `idle`: a client that stops reading does not
/// keep a feed's place. Time the database takes to produce a chunk does not count. A body cut
/// short ends with an error, so that the response is aborted rather than seen as complete.
fn watched<S>(
    body: S,
    held: impl Send + 'static,
    idle: Duration,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static,
{
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::task::Poll;
    struct Watch {
        /// Polls so far.
        polls: AtomicU64,
        /// The last poll handed out a chunk: the next move is the client's.
        waiting_for_client: AtomicBool,
        /// The watchdog ended the body.
        cut: AtomicBool,
    }
    type Slot<S> = std::sync::Mutex<Option<(std::pin::Pin<Box<S>>, Box<dyn Send>)>>;
    let slot: Arc<Slot<S>> = Arc::new(std::sync::Mutex::new(Some((
        Box::pin(body),
        Box::new(held) as Box<dyn Send>,
    ))));
    let watch = Arc::new(Watch {
        polls: AtomicU64::new(0),
        waiting_for_client: AtomicBool::new(true),
        cut: AtomicBool::new(false),
    });
    let (weak, watcher) = (Arc::downgrade(&slot), watch.clone());
    tokio::spawn(async move {
        let mut seen = watcher.polls.load(Ordering::SeqCst);
        loop {
            tokio::time::sleep(idle).await;
            let Some(slot) = weak.upgrade() else {
                return;
            };
            let polls = watcher.polls.load(Ordering::SeqCst);
            if polls == seen && watcher.waiting_for_client.load(Ordering::SeqCst) {
                log_refusal("feed_idle_timeout", "");
                let ended = slot.lock().ok().and_then(|mut slot| slot.take());
                if ended.is_some() {
                    watcher.cut.store(true, Ordering::SeqCst);
                }
                drop(ended);
                return;
            }
            seen = polls;
        }
    });
    futures_util::stream::poll_fn(move |cx| {
        watch.polls.fetch_add(1, Ordering::SeqCst);
        let Ok(mut slot) = slot.lock() else {
            return Poll::Ready(None);
        };
        let Some((body, _)) = slot.as_mut() else {
            // Once: the error that aborts the response, then the end.
            return Poll::Ready(watch.cut.swap(false, Ordering::SeqCst).then(|| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the client stopped reading the feed",
                ))
            }));
        };
        let polled = body.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(_)) => watch.waiting_for_client.store(true, Ordering::SeqCst),
            Poll::Ready(None) => *slot = None,
            Poll::Pending => watch.waiting_for_client.store(false, Ordering::SeqCst),
        }
        polled
    })
}

/// Answers a feed: 304 when the client's copy is current, the streamed rows otherwise. A
/// public feed takes one of its client address's places (`address`).
async fn serve(
    state: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
    query: FeedQuery,
    format: Format,
    address: Option<IpAddr>,
) -> Result<Response, AppError> {
    query.check(&state.catalogue)?;
    let mut conn = state.pool.get().await?;
    let version = export::version(&mut conn, &query, format).await?;
    drop(conn);
    let mut response_headers = cache_headers(query.audience, &version, state.limits.feed_max_age);
    if not_modified(headers, &version) {
        return Ok((StatusCode::NOT_MODIFIED, response_headers).into_response());
    }
    let place = address
        .map(|address| {
            state.feed_clients.take(
                crate::auth::throttle::counted_as(address),
                state.limits.max_feeds_per_address,
            )
        })
        .transpose()?;
    let Ok(permit) = state.feed_streams.clone().try_acquire_owned() else {
        log_refusal("max_feed_streams", uri.path());
        return Err(AppError::Unavailable(
            "too many feeds are being downloaded; try again shortly".into(),
        ));
    };
    let feed = export::open(
        &state.database_url,
        &state.pool,
        &state.catalogue,
        &query,
        format,
        CHUNK_ROWS,
        Some(state.limits.feed_timeout),
    )
    .await?;
    let cursor = feed.next.encode();
    let link = format!("<{}?since={cursor}>; rel=\"next\"", uri.path());
    for (name, value) in [
        (header::CONTENT_TYPE, format.media_type().to_owned()),
        (HeaderName::from_static(FEED_CURSOR), cursor),
        (header::LINK, link),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response_headers.insert(name, value);
        }
    }
    // The permit is held until the last byte is sent, the client goes away or stops reading.
    let body = watched(feed.body, (permit, place), state.limits.feed_idle_timeout);
    Ok((response_headers, Body::from_stream(body)).into_response())
}

fn answer(result: Result<Response, AppError>) -> Response {
    match result {
        Ok(response) => response,
        Err(error) => {
            let mut response = error_response(&error);
            if response.status() == StatusCode::SERVICE_UNAVAILABLE {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(RETRY_AFTER_UNAVAILABLE),
                );
            }
            response
        }
    }
}

/// `GET /feed/{agency id}.csv` or `.jsonl`: the agency's published values. An agency without
/// a public dashboard and one that does not exist get the same 404.
pub(super) async fn public(
    State(state): State<AppState>,
    super::Client(address): super::Client,
    Path(file): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    answer(
        async {
            let (id, extension) = file.rsplit_once('.').ok_or_else(|| {
                AppError::NotFound("feeds are /feed/<agency id>.csv or .jsonl".into())
            })?;
            let format = match extension {
                "csv" => Format::Csv,
                "jsonl" => Format::JsonLines,
                _ => {
                    return Err(AppError::NotFound(
                        "feeds are /feed/<agency id>.csv or .jsonl".into(),
                    ));
                }
            };
            let id = agency_id(id)?;
            let query = Filters::parse(&uri, pairs)?.query(Audience::Public, id);
            query.check(&state.catalogue)?;
            let conn = state.pool.get().await?;
            let agency = Agency::by_ids(&mut &*conn, &[id]).await?.pop();
            drop(conn);
            if !agency.is_some_and(|agency| agency.is_dashboard_enabled) {
                return Err(agency_not_found(id));
            }
            serve(&state, &uri, &headers, query, format, address.0).await
        }
        .await,
    )
}

async fn member_feed(
    state: AppState,
    id: String,
    pairs: Vec<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    format: Format,
) -> Response {
    answer(
        async {
            let id = agency_id(&id)?;
            let query = Filters::parse(&uri, pairs)?.query(Audience::Members, id);
            query.check(&state.catalogue)?;
            let viewer = viewer(&state, &headers).await?;
            member_agency(&state, &viewer, id).await?;
            serve(&state, &uri, &headers, query, format, None).await
        }
        .await,
    )
}

/// `GET /agencies/{id}/datapoints`: CSV, or JSON Lines when `Accept` asks for it.
pub(super) async fn members(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let format = if accept.contains("application/x-ndjson") || accept.contains("application/jsonl")
    {
        Format::JsonLines
    } else {
        Format::Csv
    };
    member_feed(state, id, pairs, uri, headers, format).await
}

/// What a feed handler answers with.
type Answer = std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send>>;

/// `GET /agencies/{id}/datapoints.csv` and `.jsonl`.
#[allow(
    clippy::type_complexity,
    reason = "the handler's extractors, spelled out"
)]
pub(super) fn members_as(
    format: Format,
) -> impl Fn(State<AppState>, Path<String>, Query<Vec<(String, String)>>, Uri, HeaderMap) -> Answer
+ Clone
+ Send
+ Sync
+ 'static {
    move |State(state), Path(id), Query(pairs), uri, headers| {
        Box::pin(member_feed(state, id, pairs, uri, headers, format))
    }
}

/// `GET /agencies/{id}/datapoints.xlsx?system=S`: the agency's values of one system in the
/// bulk-upload layout (`singlePage` for one sheet), to correct and upload again.
pub(super) async fn members_xlsx(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    answer(
        async {
            let id = agency_id(&id)?;
            let filters = Filters::parse(&uri, pairs)?;
            let viewer = viewer(&state, &headers).await?;
            let agency = member_agency(&state, &viewer, id).await?;
            let system = filters.system.ok_or_else(|| {
                AppError::BadUserInput("name the system: ?system=LAW_ENFORCEMENT".into())
            })?;
            if filters.since.is_some()
                || filters.metric.is_some()
                || filters.from.is_some()
                || filters.to.is_some()
            {
                return Err(AppError::BadUserInput(
                    "the spreadsheet holds all values of one system: it takes `system` and \
                     `singlePage` only"
                        .into(),
                ));
            }
            // A workbook is built whole: it takes one of the feeds' places, for a feed's time.
            let Ok(permit) = state.feed_streams.clone().try_acquire_owned() else {
                log_refusal("max_feed_streams", uri.path());
                return Err(AppError::Unavailable(
                    "too many feeds are being downloaded; try again shortly".into(),
                ));
            };
            let build = async {
                let mut conn = state.pool.get().await?;
                let sheets = export::sheets::sheets(
                    &mut conn,
                    &state.catalogue,
                    agency.id,
                    system,
                    filters.single_page,
                )
                .await?;
                drop(conn);
                super::files::workbook(sheets, Some(permit)).await
            };
            let bytes = tokio::time::timeout(state.limits.feed_timeout, build)
                .await
                .map_err(|_| AppError::Unavailable(crate::error::TOO_SLOW.into()))??;
            let name = format!("{}_{}_data.xlsx", agency.id, system.key().to_lowercase());
            Ok((
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static(
                            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                        ),
                    ),
                    (header::CONTENT_DISPOSITION, disposition(&name)),
                    (
                        header::CACHE_CONTROL,
                        HeaderValue::from_static("private, no-store"),
                    ),
                ],
                bytes,
            )
                .into_response())
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use futures_util::StreamExt;

    use super::*;

    /// Set when dropped.
    struct Flag(Arc<AtomicBool>);

    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_loses_its_place_a_slow_database_does_not() {
        let idle = Duration::from_millis(100);
        // The client takes one chunk and no more.
        let dropped = Arc::new(AtomicBool::new(false));
        let chunk = |n: u8| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![n]));
        let chunks = futures_util::stream::iter([chunk(1), chunk(2), chunk(3)]);
        let mut body = Box::pin(watched(chunks, Flag(dropped.clone()), idle));
        assert_eq!(body.next().await.unwrap().unwrap(), vec![1]);
        tokio::time::sleep(idle * 3).await;
        assert!(dropped.load(Ordering::SeqCst), "the place is given back");
        let cut = body.next().await.expect("an error, not the end");
        assert_eq!(cut.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
        assert!(body.next().await.is_none(), "then the end");

        // The database takes long for each chunk; the client waits for every one.
        let kept = Arc::new(AtomicBool::new(false));
        let slow = futures_util::stream::iter([1u8, 2]).then(move |n| async move {
            tokio::time::sleep(idle * 3).await;
            chunk(n)
        });
        let body = watched(slow, Flag(kept.clone()), idle);
        let all: Vec<Vec<u8>> = body.map(|chunk| chunk.unwrap().to_vec()).collect().await;
        assert_eq!(all, [vec![1], vec![2]]);
        assert!(kept.load(Ordering::SeqCst), "given back at the end");
    }
}
