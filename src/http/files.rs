//! Files over plain HTTP, for members of an agency with the same bearer token as GraphQL:
//! an uploaded spreadsheet downloaded again, and the templates to fill in.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use crate::auth::permissions::{Permission, agency_not_found};
use crate::auth::{self, Viewer};
use crate::error::{AppError, ErrorCode};
use crate::ingest::{self, template};
use crate::models::agency::Agency;
use crate::models::enums::System;
use crate::models::ids::{AgencyId, SpreadsheetId};
use crate::models::spreadsheet;

/// An error as GraphQL clients know them: `{"errors": [{message, extensions: {code}}]}`.
pub(super) fn error_response(error: &AppError) -> Response {
    let code = error.code();
    let status = match code {
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::BadUserInput => StatusCode::BAD_REQUEST,
        ErrorCode::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if let AppError::Internal(source) = error {
        tracing::error!(error = ?source, "file request failed");
    }
    let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
        "the server could not answer; try again".to_owned()
    } else {
        error.to_string()
    };
    let body = serde_json::json!({
        "errors": [{ "message": message, "extensions": { "code": code.as_str() } }]
    });
    let mut response = (status, axum::Json(body)).into_response();
    if let AppError::RateLimited { retry_after, .. } = error {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
    }
    response
}

/// The most rows a worksheet holds (Excel's limit, less the header).
const MAX_SHEET_ROWS: usize = 1_048_575;

/// The workbook of `sheets`, built off the request threads; BAD_USER_INPUT when a sheet holds
/// more rows than a worksheet can. `place` is held until the build ends, even when the
/// request stops waiting for it (a blocking build cannot be stopped).
pub(super) async fn workbook(
    sheets: Vec<template::TemplateSheet>,
    place: Option<tokio::sync::OwnedSemaphorePermit>,
) -> Result<Vec<u8>, AppError> {
    if let Some(sheet) = sheets
        .iter()
        .find(|sheet| sheet.rows.len() > MAX_SHEET_ROWS)
    {
        return Err(AppError::BadUserInput(format!(
            "the sheet {:?} would hold {} rows, more than a worksheet can ({MAX_SHEET_ROWS}): \
             download the CSV feed instead",
            sheet.name,
            sheet.rows.len()
        )));
    }
    tokio::task::spawn_blocking(move || {
        let built = template::xlsx(&sheets);
        drop(place);
        built
    })
    .await
    .map_err(|error| AppError::Internal(error.into()))?
    .map_err(|error| AppError::Internal(error.into()))
}

/// The viewer of the request's bearer token; a signed-in viewer's request takes from their
/// rate (the address's was taken before).
pub(super) async fn viewer(state: &AppState, headers: &HeaderMap) -> Result<Viewer, AppError> {
    let Some(authorization) = headers.get(header::AUTHORIZATION) else {
        return Ok(Viewer::Anonymous);
    };
    let authorization = authorization.to_str().unwrap_or("invalid");
    let viewer = auth::authenticate(&state.pool, &state.auth, Some(authorization)).await?;
    if let Some(user) = viewer.user_id() {
        state
            .rates
            .from_user(user)
            .map_err(|retry_after| AppError::RateLimited {
                message: format!("too many requests; retry in {retry_after} s"),
                retry_after,
            })?;
    }
    Ok(viewer)
}

/// The agency when the viewer may read its non-public data; NOT_FOUND otherwise (as for an
/// agency that does not exist), UNAUTHENTICATED without a token.
pub(super) async fn member_agency(
    state: &AppState,
    viewer: &Viewer,
    id: AgencyId,
) -> Result<Agency, AppError> {
    if viewer.user_id().is_none() {
        return Err(AppError::Unauthenticated(
            "send a bearer token of a member of the agency".into(),
        ));
    }
    let conn = state.pool.get().await?;
    let agency = Agency::by_ids(&mut &*conn, &[id])
        .await?
        .pop()
        .ok_or_else(|| agency_not_found(id))?;
    if !viewer.can(Permission::ReadAgency, agency.scope()) {
        return Err(agency_not_found(id));
    }
    if agency.is_superagency {
        // What it downloads may hold its child agencies' values: the token must allow
        // reading them.
        let children: Vec<AgencyId> = Agency::children_of(&mut &*conn, &[id])
            .await?
            .into_iter()
            .map(|child| child.id)
            .collect();
        viewer.require_token_over(crate::auth::permissions::Operation::Read, &children)?;
    }
    Ok(agency)
}

/// A file name safe in a `Content-Disposition` header.
pub(super) fn disposition(file_name: &str) -> HeaderValue {
    let safe: String = file_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    HeaderValue::from_str(&format!("attachment; filename=\"{safe}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// `GET /uploads/{id}/file`: the file as uploaded, streamed part by part.
pub(super) async fn upload_file(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let viewer = viewer(&state, &headers).await?;
        let id = SpreadsheetId(
            id.parse()
                .map_err(|_| AppError::BadUserInput(format!("{id:?} is not an upload id")))?,
        );
        let not_found = || AppError::NotFound(format!("no upload has id {id}"));
        let mut conn = state.pool.get().await?;
        let upload = spreadsheet::find(&mut conn, id)
            .await?
            .ok_or_else(not_found)?;
        drop(conn);
        member_agency(&state, &viewer, upload.agency_id)
            .await
            .map_err(|error| match error {
                AppError::NotFound(_) => not_found(),
                other => other,
            })?;
        Ok::<_, AppError>(upload)
    }
    .await;
    let upload = match result {
        Ok(upload) => upload,
        Err(error) => return error_response(&error),
    };
    let content_type = match crate::ingest::read::Format::of(&upload.file_name) {
        Some(crate::ingest::read::Format::Csv) => "text/csv; charset=utf-8",
        Some(crate::ingest::read::Format::Xls) => "application/vnd.ms-excel",
        _ => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    };
    let pool = state.pool.clone();
    let id = upload.id;
    let stream = futures_util::stream::unfold(Some(0i32), move |part| {
        let pool = pool.clone();
        async move {
            let index = part?;
            let bytes = async {
                let mut conn = pool.get().await.map_err(std::io::Error::other)?;
                ingest::file_part(&mut conn, id, index)
                    .await
                    .map_err(std::io::Error::other)
            }
            .await;
            match bytes {
                Ok(Some(bytes)) => Some((Ok(bytes), Some(index + 1))),
                Ok(None) => None,
                Err(error) => Some((Err(error), None)),
            }
        }
    });
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_DISPOSITION, disposition(&upload.file_name)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-store"),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

/// Options of a template.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct TemplateOptions {
    /// One sheet for all metrics.
    #[serde(default)]
    single_page: bool,
    /// Every metric and member, not only the enabled ones.
    #[serde(default)]
    generic: bool,
}

/// `GET /agencies/{id}/templates/{SYSTEM}.xlsx` (or `.csv`, always the single-sheet layout).
pub(super) async fn template(
    State(state): State<AppState>,
    Path((id, file)): Path<(String, String)>,
    Query(options): Query<TemplateOptions>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let viewer = viewer(&state, &headers).await?;
        let id = AgencyId(
            id.parse()
                .map_err(|_| AppError::BadUserInput(format!("{id:?} is not an agency id")))?,
        );
        let (system, extension) = file.rsplit_once('.').ok_or_else(|| {
            AppError::BadUserInput("ask for <SYSTEM>.xlsx or <SYSTEM>.csv".into())
        })?;
        let system = System::from_key(&system.to_uppercase())
            .ok_or_else(|| AppError::BadUserInput(format!("{system} is not a system")))?;
        let csv = match extension.to_ascii_lowercase().as_str() {
            "xlsx" => false,
            "csv" => true,
            _ => {
                return Err(AppError::BadUserInput(
                    "templates are .xlsx or .csv files".into(),
                ));
            }
        };
        let agency = member_agency(&state, &viewer, id).await?;
        let mut conn = state.pool.get().await?;
        let context = ingest::context(&mut conn, &state.catalogue, agency.id, system).await?;
        drop(conn);
        let kind = template::TemplateKind {
            single_sheet: options.single_page || csv,
            generic: options.generic,
        };
        let sheets = template::sheets(&context, kind);
        let name = format!("{}_{}", agency.id, system.key().to_lowercase());
        if csv {
            let sheet = sheets.first().cloned().unwrap_or(template::TemplateSheet {
                name: String::new(),
                header: Vec::new(),
                rows: Vec::new(),
            });
            let bytes = template::csv(&sheet).map_err(|error| AppError::Internal(error.into()))?;
            Ok((bytes, format!("{name}.csv"), "text/csv; charset=utf-8"))
        } else {
            let bytes = workbook(sheets, None).await?;
            Ok((
                bytes,
                format!("{name}.xlsx"),
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            ))
        }
    }
    .await;
    match result {
        Ok((bytes, name, content_type)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                (header::CONTENT_DISPOSITION, disposition(&name)),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("private, no-store"),
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(error) => error_response(&error),
    }
}
