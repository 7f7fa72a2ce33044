//! The one extension every request passes through. async-graphql wraps the resolution of
//! every field in every registered extension, so the server's request-level work shares a
//! single extension rather than one each: the limits on the document ([`cost`]), the error
//! codes ([`codes`]), the operation's name for logs and metrics ([`operation`]) and the order
//! of the response's keys ([`order`]).
//!
//! Parsed documents are kept (keyed by their text, least recently used dropped first), so a
//! screen's document is parsed and its size checked once, not on every request: the frontend
//! sends the same few documents over and over. The checks that depend on the variables run
//! every time.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextRequest,
    NextValidation,
};
use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql::{Response, ServerError, ServerResult, ValidationResult, Variables};
use lru::LruCache;

use super::loaders::DbLoader;
use super::operation::OperationName;
use super::{codes, cost, order};
use crate::limits::Limits;

/// The longest document text kept parsed.
const MAX_KEPT_TEXT: usize = 16 * 1024;

/// Parsed documents by their text.
type Parsed = Mutex<LruCache<String, Arc<ExecutableDocument>>>;

/// Extension factory: a fresh pipeline per request.
pub struct Pipeline {
    limits: Option<Arc<Limits>>,
    parsed: Option<Arc<Parsed>>,
}

impl Pipeline {
    /// The pipeline with the limits on documents, keeping up to `limits.parsed_documents`
    /// parsed documents.
    pub fn checked(limits: Arc<Limits>) -> Self {
        let parsed = NonZeroUsize::new(limits.parsed_documents)
            .map(|size| Arc::new(Mutex::new(LruCache::new(size))));
        Self {
            limits: Some(limits),
            parsed,
        }
    }

    /// The pipeline without them and without kept documents (the baseline of the benchmark
    /// of the limits).
    pub fn unchecked() -> Self {
        Self {
            limits: None,
            parsed: None,
        }
    }
}

impl ExtensionFactory for Pipeline {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RequestPipeline {
            limits: self.limits.clone(),
            parsed: self.parsed.clone(),
            document: Mutex::new(None),
        })
    }
}

struct RequestPipeline {
    limits: Option<Arc<Limits>>,
    parsed: Option<Arc<Parsed>>,
    /// The parsed document, kept to put the response's keys in order.
    document: Mutex<Option<Arc<ExecutableDocument>>>,
}

impl RequestPipeline {
    fn remembered(&self, query: &str) -> Option<Arc<ExecutableDocument>> {
        let parsed = self.parsed.as_ref()?;
        parsed.lock().ok()?.get(query).cloned()
    }

    fn remember(&self, query: &str, document: &Arc<ExecutableDocument>) {
        if query.len() <= MAX_KEPT_TEXT
            && let Some(parsed) = &self.parsed
            && let Ok(mut parsed) = parsed.lock()
        {
            parsed.put(query.to_owned(), document.clone());
        }
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for RequestPipeline {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        codes::complete(&mut response);
        response
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = match self.remembered(query) {
            // Its text passed the checks when it was first parsed.
            Some(document) => document,
            None => {
                if let Some(limits) = &self.limits {
                    cost::check_text(limits, query)?;
                }
                let document = Arc::new(
                    next.run(ctx, query, variables)
                        .await
                        .map_err(codes::parse_failed)?,
                );
                self.remember(query, &document);
                document
            }
        };
        if let Some(limits) = &self.limits {
            cost::check_document(limits, &ctx.schema_env.registry, &document, variables)?;
        }
        if let Some(name) = ctx.data_opt::<OperationName>() {
            name.record(&document);
        }
        if let Some(loader) = ctx.data_opt::<DbLoader>() {
            let queries_only = document
                .operations
                .iter()
                .all(|(_, operation)| operation.node.ty == OperationType::Query);
            loader.enable_all_cache(queries_only);
        }
        let owned = ExecutableDocument::clone(&document);
        if let Ok(mut kept) = self.document.lock() {
            *kept = Some(document);
        }
        Ok(owned)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(codes::validation_failed)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let mut response = next.run(ctx, operation_name).await;
        let document = self.document.lock().ok().and_then(|mut kept| kept.take());
        if let Some(document) = document {
            order::restore(&document, operation_name, &mut response);
        }
        response
    }
}
