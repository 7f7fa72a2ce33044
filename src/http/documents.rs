//! Which documents may run: with a trusted-documents manifest configured, only those it lists
//! (sent in full or by hash); otherwise any, and clients may send a hash instead of a document
//! they sent before (automatic persisted queries: the `persistedQuery` extension with its
//! SHA-256, as Apollo's clients do).

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::Mutex;

use anyhow::Context;
use async_graphql::Value;
use lru::LruCache;

use crate::auth::secrets;

/// Why a request's document cannot run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `extensions.code`.
    pub code: &'static str,
    /// The message.
    pub message: String,
}

fn refusal(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

/// The documents allowed or remembered.
#[derive(Debug)]
pub struct Documents {
    trusted: Option<HashMap<String, String>>,
    remembered: Option<Mutex<Remembered>>,
}

/// Persisted queries by hash, within a budget of bytes: the least recently used go first.
#[derive(Debug)]
struct Remembered {
    documents: LruCache<String, String>,
    bytes: usize,
    budget: usize,
}

impl Remembered {
    fn get(&mut self, hash: &str) -> Option<&String> {
        self.documents.get(hash)
    }

    /// Keeps `document` unless it alone outweighs the budget.
    fn put(&mut self, hash: String, document: String) {
        if document.len() > self.budget {
            return;
        }
        self.bytes += document.len();
        if let Some((_, gone)) = self.documents.push(hash, document) {
            self.bytes -= gone.len();
        }
        while self.bytes > self.budget {
            let Some((_, gone)) = self.documents.pop_lru() else {
                break;
            };
            self.bytes -= gone.len();
        }
    }
}

impl Documents {
    /// The trusted documents from `manifest` (a JSON object of SHA-256 hex to document), if
    /// given, and a cache of `cache_size` persisted queries (none when 0) of at most
    /// `cache_bytes` in all.
    pub fn load(
        manifest: Option<&Path>,
        cache_size: usize,
        cache_bytes: usize,
    ) -> anyhow::Result<Self> {
        let trusted = manifest
            .map(|path| {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!("cannot read the trusted documents {}", path.display())
                })?;
                Self::parse_manifest(&text)
                    .with_context(|| format!("invalid trusted documents {}", path.display()))
            })
            .transpose()?;
        Ok(Self {
            trusted,
            remembered: NonZeroUsize::new(cache_size).map(|size| {
                Mutex::new(Remembered {
                    documents: LruCache::new(size),
                    bytes: 0,
                    budget: cache_bytes,
                })
            }),
        })
    }

    /// Parses a manifest and checks that every document has the hash it is listed under.
    pub fn parse_manifest(text: &str) -> anyhow::Result<HashMap<String, String>> {
        let manifest: HashMap<String, String> = serde_json::from_str(text)
            .context("expected a JSON object of SHA-256 hex to document")?;
        for (hash, document) in &manifest {
            anyhow::ensure!(
                secrets::digest(document) == hash.to_ascii_lowercase(),
                "the document listed under {hash} has another SHA-256"
            );
        }
        Ok(manifest
            .into_iter()
            .map(|(hash, document)| (hash.to_ascii_lowercase(), document))
            .collect())
    }

    /// Fills in the request's document from its hash, or refuses it.
    pub fn resolve(&self, request: &mut async_graphql::Request) -> Result<(), Refusal> {
        let hash = persisted_hash(request)?;
        if let Some(trusted) = &self.trusted {
            let hash = match hash {
                Some(hash) => hash,
                None => secrets::digest(&request.query),
            };
            let Some(document) = trusted.get(&hash) else {
                crate::limits::log_refusal("trusted_documents", &hash);
                return Err(refusal(
                    "PERSISTED_QUERY_NOT_IN_LIST",
                    "only the operations in the server's list of trusted documents may run",
                ));
            };
            if request.query.is_empty() {
                request.query.clone_from(document);
            } else if request.query != *document {
                return Err(refusal(
                    "BAD_REQUEST",
                    "the document does not match its persisted query hash",
                ));
            }
            return Ok(());
        }
        let Some(hash) = hash else { return Ok(()) };
        let Some(remembered) = &self.remembered else {
            return Err(refusal(
                "PERSISTED_QUERY_NOT_SUPPORTED",
                "PersistedQueryNotSupported",
            ));
        };
        let mut remembered = remembered
            .lock()
            .map_err(|_| refusal("INTERNAL_SERVER_ERROR", "internal server error"))?;
        if request.query.is_empty() {
            let document = remembered
                .get(&hash)
                .ok_or_else(|| refusal("PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound"))?;
            request.query.clone_from(document);
        } else if secrets::digest(&request.query) == hash {
            remembered.put(hash, request.query.clone());
        } else {
            return Err(refusal("BAD_REQUEST", "provided sha does not match query"));
        }
        Ok(())
    }
}

/// The SHA-256 of `extensions.persistedQuery`, checked for shape.
fn persisted_hash(request: &async_graphql::Request) -> Result<Option<String>, Refusal> {
    let Some(persisted) = request.extensions.get("persistedQuery") else {
        return Ok(None);
    };
    let malformed = || {
        refusal(
            "BAD_REQUEST",
            "`extensions.persistedQuery` must be {\"version\": 1, \"sha256Hash\": \"<hex>\"}",
        )
    };
    let Value::Object(fields) = persisted else {
        return Err(malformed());
    };
    let version_one =
        matches!(fields.get("version"), Some(Value::Number(n)) if n.as_u64() == Some(1));
    match fields.get("sha256Hash") {
        Some(Value::String(hash))
            if version_one
                && hash.len() == 64
                && hash.bytes().all(|byte| byte.is_ascii_hexdigit()) =>
        {
            Ok(Some(hash.to_ascii_lowercase()))
        }
        _ => Err(malformed()),
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::Request;

    use super::*;

    fn with_hash(query: &str, hash: &str) -> Request {
        let mut request = Request::new(query);
        let extension = serde_json::json!({ "version": 1, "sha256Hash": hash });
        request.extensions.insert(
            "persistedQuery".into(),
            Value::from_json(extension).unwrap(),
        );
        request
    }

    #[test]
    fn a_persisted_query_is_remembered_by_its_hash() {
        let documents = Documents::load(None, 10, 1 << 20).unwrap();
        let query = "{ __typename }";
        let hash = secrets::digest(query);
        let mut unknown = with_hash("", &hash);
        assert_eq!(
            documents.resolve(&mut unknown).unwrap_err().code,
            "PERSISTED_QUERY_NOT_FOUND"
        );
        documents.resolve(&mut with_hash(query, &hash)).unwrap();
        let mut known = with_hash("", &hash);
        documents.resolve(&mut known).unwrap();
        assert_eq!(known.query, query);
        let mut lying = with_hash("{ other }", &hash);
        assert_eq!(
            documents.resolve(&mut lying).unwrap_err().code,
            "BAD_REQUEST"
        );
    }

    #[test]
    fn remembered_documents_fit_in_their_budget_of_bytes() {
        let documents = Documents::load(None, 100, 100).unwrap();
        let remember = |query: &str| {
            documents
                .resolve(&mut with_hash(query, &secrets::digest(query)))
                .unwrap();
        };
        let known = |query: &str| {
            documents
                .resolve(&mut with_hash("", &secrets::digest(query)))
                .is_ok()
        };
        let long = format!("{{ __typename # {} }}", "x".repeat(200));
        remember(&long);
        assert!(!known(&long), "larger than the whole budget");
        let queries: Vec<String> = (0..6)
            .map(|n| format!("query Q{n} {{ __typename }}"))
            .collect();
        for query in &queries {
            remember(query);
        }
        // Six documents of 26 bytes do not fit in 100: the oldest went.
        assert!(!known(&queries[0]) && !known(&queries[1]));
        assert!(queries[2..].iter().all(|query| known(query)));
        let remembered = documents.remembered.as_ref().unwrap().lock().unwrap();
        assert!(remembered.bytes <= 100, "{}", remembered.bytes);
    }

    #[test]
    fn with_a_manifest_only_trusted_documents_run() {
        let query = "{ __typename }";
        let manifest = serde_json::json!({ secrets::digest(query): query }).to_string();
        let documents = Documents {
            trusted: Some(Documents::parse_manifest(&manifest).unwrap()),
            remembered: None,
        };
        documents.resolve(&mut Request::new(query)).unwrap();
        let mut by_hash = with_hash("", &secrets::digest(query));
        documents.resolve(&mut by_hash).unwrap();
        assert_eq!(by_hash.query, query);
        assert_eq!(
            documents
                .resolve(&mut Request::new("{ agencies { totalCount } }"))
                .unwrap_err()
                .code,
            "PERSISTED_QUERY_NOT_IN_LIST"
        );
        let wrong = serde_json::json!({ secrets::digest("x"): query }).to_string();
        assert!(Documents::parse_manifest(&wrong).is_err());
    }
}
