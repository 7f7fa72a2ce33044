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
//!
//! A kept document of queries only that has passed validation once is run by the
//! [`Executor`] on a second build of the schema that has no extension at all: the executor
//! does the extension's request-level work itself, and no field pays for the extension's
//! per-field hooks. Validation of such a document can only fail on the values of its
//! variables: the executor checks those against the variables' types itself
//! ([`variables::surely_valid`]), and the second build runs the fast mode of validation,
//! without the rules on the document's text. Values in any doubt go the first way, through
//! full validation and its errors.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextRequest,
    NextValidation,
};
use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql::{
    Request, Response, SchemaEnv, ServerError, ServerResult, ValidationResult, Variables,
};
use lru::LruCache;

use super::loaders::DbLoader;
use super::operation::OperationName;
use super::{AppSchema, codes, cost, nulls, order, variables};
use crate::limits::Limits;

/// The longest document text kept parsed.
const MAX_KEPT_TEXT: usize = 16 * 1024;

/// A parsed document, and what is known of it.
struct Kept {
    document: ExecutableDocument,
    /// Every operation is a query.
    queries_only: bool,
    /// It passed validation once: whatever the variables, only their values can fail it.
    validated: AtomicBool,
}

impl Kept {
    fn new(document: ExecutableDocument) -> Self {
        let queries_only = document
            .operations
            .iter()
            .all(|(_, operation)| operation.node.ty == OperationType::Query);
        Self {
            document,
            queries_only,
            validated: AtomicBool::new(false),
        }
    }
}

/// What the extension and the executor share: the limits, the kept documents, and the
/// schema's types (for the limits that depend on them).
struct Shared {
    limits: Option<Arc<Limits>>,
    parsed: Option<Mutex<LruCache<String, Arc<Kept>>>>,
    schema: OnceLock<SchemaEnv>,
    /// Requests the executor ran without the extension.
    direct: AtomicU64,
}

impl Shared {
    fn remembered(&self, query: &str) -> Option<Arc<Kept>> {
        self.parsed.as_ref()?.lock().ok()?.get(query).cloned()
    }

    fn remember(&self, query: &str, kept: &Arc<Kept>) {
        if query.len() <= MAX_KEPT_TEXT
            && let Some(parsed) = &self.parsed
            && let Ok(mut parsed) = parsed.lock()
        {
            parsed.put(query.to_owned(), kept.clone());
        }
    }
}

/// Extension factory: a fresh pipeline per request.
pub struct Pipeline {
    shared: Arc<Shared>,
}

impl Pipeline {
    /// The pipeline with the limits on documents, keeping up to `limits.parsed_documents`
    /// parsed documents.
    pub fn checked(limits: Arc<Limits>) -> Self {
        let parsed =
            NonZeroUsize::new(limits.parsed_documents).map(|size| Mutex::new(LruCache::new(size)));
        Self {
            shared: Arc::new(Shared {
                limits: Some(limits),
                parsed,
                schema: OnceLock::new(),
                direct: AtomicU64::new(0),
            }),
        }
    }

    /// The pipeline without them and without kept documents (the baseline of the benchmark
    /// of the limits).
    pub fn unchecked() -> Self {
        Self {
            shared: Arc::new(Shared {
                limits: None,
                parsed: None,
                schema: OnceLock::new(),
                direct: AtomicU64::new(0),
            }),
        }
    }
}

impl Pipeline {
    /// Another factory of the same pipeline (sharing its kept documents), to register.
    pub fn factory(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl ExtensionFactory for Pipeline {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RequestPipeline {
            shared: self.shared.clone(),
            document: Mutex::new(None),
        })
    }
}

/// Runs requests on the schema, and the kept, validated documents of queries only on the
/// same schema built without the extension (see the module's documentation).
#[derive(Clone)]
pub struct Executor {
    checked: AppSchema,
    direct: Option<AppSchema>,
    shared: Arc<Shared>,
}

impl Executor {
    /// The executor of `pipeline`'s schema, `checked` (built with `pipeline`), and of the same
    /// schema built without any extension, `direct`.
    pub(super) fn new(pipeline: &Pipeline, checked: AppSchema, direct: Option<AppSchema>) -> Self {
        Self {
            checked,
            direct,
            shared: pipeline.shared.clone(),
        }
    }

    /// The schema (with the extension): for subscriptions, introspection and printing.
    pub fn schema(&self) -> &AppSchema {
        &self.checked
    }

    /// How many requests ran without the extension.
    pub fn direct_runs(&self) -> u64 {
        self.shared.direct.load(Ordering::Relaxed)
    }

    /// Runs `request`, whose data holds `operation`, with the request's `loader`.
    pub async fn execute(
        &self,
        request: Request,
        operation: &OperationName,
        loader: DbLoader,
    ) -> Response {
        let kept = self
            .shared
            .remembered(&request.query)
            .filter(|kept| kept.queries_only && kept.validated.load(Ordering::Acquire));
        let (Some(direct), Some(kept), Some(schema)) =
            (&self.direct, kept, self.shared.schema.get())
        else {
            return self.checked.execute(request.data(loader)).await;
        };
        if !variables::surely_valid(
            &schema.registry,
            &kept.document,
            request.operation_name.as_deref(),
            &request.variables,
        ) {
            return self.checked.execute(request.data(loader)).await;
        }
        self.shared.direct.fetch_add(1, Ordering::Relaxed);
        // What the extension's hooks would do, in their order.
        if let Some(limits) = &self.shared.limits
            && let Err(exceeded) =
                cost::check_document(limits, &schema.registry, &kept.document, &request.variables)
        {
            let mut response = Response::from_errors(vec![exceeded.into()]);
            codes::complete(&mut response);
            return response;
        }
        operation.record(&kept.document);
        loader.enable_all_cache(true);
        let operation_name = request.operation_name.clone();
        let mut request = request.data(loader);
        request.set_parsed_query(kept.document.clone());
        let mut response = direct.execute(request).await;
        // The document is valid: validation can only fault the variables' values, which is
        // the user's input, as is an unknown operation name; the default code is that one.
        codes::complete(&mut response);
        nulls::propagate(
            &schema.registry,
            &kept.document,
            operation_name.as_deref(),
            &mut response,
        );
        order::restore(&kept.document, operation_name.as_deref(), &mut response);
        response
    }
}

struct RequestPipeline {
    shared: Arc<Shared>,
    /// The parsed document, kept to mark it validated and to put the response's keys in
    /// order.
    document: Mutex<Option<Arc<Kept>>>,
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
        let shared = &self.shared;
        let kept = match shared.remembered(query) {
            // Its text passed the checks when it was first parsed.
            Some(kept) => kept,
            None => {
                if let Some(limits) = &shared.limits {
                    cost::check_text(limits, query)?;
                }
                let document = next
                    .run(ctx, query, variables)
                    .await
                    .map_err(codes::parse_failed)?;
                let kept = Arc::new(Kept::new(document));
                shared.remember(query, &kept);
                kept
            }
        };
        shared.schema.get_or_init(|| ctx.schema_env.clone());
        if let Some(limits) = &shared.limits {
            cost::check_document(limits, &ctx.schema_env.registry, &kept.document, variables)?;
        }
        if let Some(name) = ctx.data_opt::<OperationName>() {
            name.record(&kept.document);
        }
        if let Some(loader) = ctx.data_opt::<DbLoader>() {
            loader.enable_all_cache(kept.queries_only);
        }
        let owned = kept.document.clone();
        if let Ok(mut document) = self.document.lock() {
            *document = Some(kept);
        }
        Ok(owned)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await.map_err(codes::validation_failed)?;
        if let Ok(document) = self.document.lock()
            && let Some(kept) = document.as_ref()
        {
            kept.validated.store(true, Ordering::Release);
        }
        Ok(result)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let mut response = next.run(ctx, operation_name).await;
        let kept = self.document.lock().ok().and_then(|mut kept| kept.take());
        if let Some(kept) = kept {
            nulls::propagate(
                &ctx.schema_env.registry,
                &kept.document,
                operation_name,
                &mut response,
            );
            order::restore(&kept.document, operation_name, &mut response);
        }
        response
    }
}
