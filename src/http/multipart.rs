//! The GraphQL multipart request (file uploads): an `operations` part holding the request as
//! JSON, a `map` part naming the variable each file fills, and the files. Each part is held to
//! its own limit where it is read: `operations` and `map` to the JSON body's
//! (`MAX_BODY_BYTES`), as they are read into memory; the one file allowed to the upload's
//! (`MAX_UPLOAD_BYTES`), written to a temporary file as it arrives.

use std::collections::HashMap;

use async_graphql::UploadValue;
use axum::body::Body;
use axum::http::{HeaderMap, header};
use futures_util::TryStreamExt;
use multer::{Constraints, Multipart, SizeLimit};
use tokio::io::AsyncWriteExt;

/// Room for the parts' headers and boundaries.
const FRAMING_BYTES: u64 = 16 << 10;

/// Why a multipart request is refused.
#[derive(Debug)]
pub enum Refused {
    /// A part, or the whole body, exceeds its limit (`PAYLOAD_TOO_LARGE`); the limit's name.
    TooLarge(&'static str, String),
    /// Not a GraphQL multipart request (`BAD_REQUEST`).
    Malformed(String),
}

fn malformed(message: impl Into<String>) -> Refused {
    Refused::Malformed(message.into())
}

/// The limits of one multipart request.
#[derive(Debug, Clone, Copy)]
pub struct PartLimits {
    /// `operations` and `map`, each.
    pub json_bytes: usize,
    /// The file.
    pub file_bytes: usize,
}

impl PartLimits {
    fn too_large_file(&self) -> Refused {
        Refused::TooLarge(
            "max_upload_bytes",
            format!(
                "an uploaded file may hold at most {} bytes",
                self.file_bytes
            ),
        )
    }

    fn too_large_part(&self, part: &str) -> Refused {
        Refused::TooLarge(
            "max_body_bytes",
            format!(
                "the `{part}` part may hold at most {} bytes",
                self.json_bytes
            ),
        )
    }

    /// The most a whole body may hold.
    fn body_bytes(&self) -> u64 {
        (self.json_bytes as u64)
            .saturating_mul(2)
            .saturating_add(self.file_bytes as u64)
            .saturating_add(FRAMING_BYTES)
    }
}

/// Reads a GraphQL multipart request: one operation, at most one file.
pub async fn read(
    body: Body,
    headers: &HeaderMap,
    limits: PartLimits,
) -> Result<async_graphql::Request, Refused> {
    let body_bytes = limits.body_bytes();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > body_bytes) {
        return Err(limits.too_large_file());
    }
    let boundary = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| multer::parse_boundary(value).ok())
        .ok_or_else(|| malformed("a multipart body needs a boundary in its `Content-Type`"))?;
    let json_bytes = limits.json_bytes as u64;
    let constraints = Constraints::new().size_limit(
        SizeLimit::new()
            .whole_stream(body_bytes)
            .per_field(limits.file_bytes as u64)
            .for_field("operations", json_bytes)
            .for_field("map", json_bytes),
    );
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let mut multipart = Multipart::with_constraints(stream, boundary, constraints);
    let mut operations: Option<async_graphql::Request> = None;
    let mut map: Option<HashMap<String, Vec<String>>> = None;
    let mut file: Option<(String, UploadValue)> = None;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(error) => return Err(refusal_of(error, &limits)),
        };
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "operations" if operations.is_some() => {
                return Err(malformed("the request has two `operations` parts"));
            }
            "map" if map.is_some() => {
                return Err(malformed("the request has two `map` parts"));
            }
            "operations" => {
                let bytes = field.bytes().await.map_err(|e| refusal_of(e, &limits))?;
                if bytes.trim_ascii_start().first() != Some(&b'{') {
                    return Err(malformed(
                        "`operations` must be one GraphQL request: a JSON object",
                    ));
                }
                operations = Some(serde_json::from_slice(&bytes).map_err(|error| {
                    malformed(format!("`operations` is not a GraphQL request: {error}"))
                })?);
            }
            "map" => {
                let bytes = field.bytes().await.map_err(|e| refusal_of(e, &limits))?;
                map = Some(serde_json::from_slice(&bytes).map_err(|error| {
                    malformed(format!(
                        "`map` must map file parts to lists of variable paths: {error}"
                    ))
                })?);
            }
            _ => {
                if file.is_some() {
                    return Err(malformed("a request may carry one file"));
                }
                let Some(file_name) = field.file_name().map(str::to_owned) else {
                    return Err(malformed(format!("the part `{name}` is not a file")));
                };
                let content_type = field.content_type().map(ToString::to_string);
                let content = save(field, &limits).await?;
                file = Some((
                    name,
                    UploadValue {
                        filename: file_name,
                        content_type,
                        content,
                    },
                ));
            }
        }
    }
    let mut request =
        operations.ok_or_else(|| malformed("the multipart request has no `operations` part"))?;
    let mut map = map.ok_or_else(|| malformed("the multipart request has no `map` part"))?;
    let mut files = 0;
    if let Some((name, upload)) = file {
        let paths = map
            .remove(&name)
            .ok_or_else(|| malformed(format!("`map` does not name the file part `{name}`")))?;
        // One variable per file: each copy would hold a file descriptor of its own.
        let [path] = paths.as_slice() else {
            return Err(malformed(format!(
                "`map` must give the file part `{name}` one variable"
            )));
        };
        request.set_upload(path, upload);
        // A path that names no variable places nothing, and the request would then point at
        // a file it does not carry.
        if request.uploads.is_empty() {
            return Err(malformed(format!(
                "`map` gives the file part `{name}` the path `{path}`, which names no variable of \
                 the request"
            )));
        }
        files = request.uploads.len();
    }
    if let Some(name) = map.keys().next() {
        return Err(malformed(format!(
            "`map` names the part `{name}`, which the request does not carry"
        )));
    }
    Ok(request.data(crate::graphql::scalars::FileCount(files)))
}

/// Writes a file part to a temporary file, as it arrives.
async fn save(mut field: multer::Field<'_>, limits: &PartLimits) -> Result<std::fs::File, Refused> {
    let io = |error: std::io::Error| {
        tracing::error!(%error, "cannot store an uploaded file");
        malformed("the uploaded file could not be stored")
    };
    let file = tempfile::tempfile().map_err(io)?;
    let mut writer = tokio::fs::File::from_std(file);
    loop {
        match field.chunk().await {
            Ok(Some(chunk)) => writer.write_all(&chunk).await.map_err(io)?,
            Ok(None) => break,
            Err(error) => return Err(refusal_of(error, limits)),
        }
    }
    writer.flush().await.map_err(io)?;
    let mut file = writer.into_std().await;
    std::io::Seek::rewind(&mut file).map_err(io)?;
    Ok(file)
}

fn refusal_of(error: multer::Error, limits: &PartLimits) -> Refused {
    match error {
        multer::Error::FieldSizeExceeded { field_name, .. } => match field_name.as_deref() {
            Some(part @ ("operations" | "map")) => limits.too_large_part(part),
            _ => limits.too_large_file(),
        },
        multer::Error::StreamSizeExceeded { .. } => limits.too_large_file(),
        other => malformed(format!(
            "the body is not a GraphQL multipart request: {other}"
        )),
    }
}
