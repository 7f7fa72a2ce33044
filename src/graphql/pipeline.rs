//! The one extension every request passes through. async-graphql wraps the resolution of
//! every field in every registered extension, so the server's request-level work shares a
//! single extension rather than one each: the limits on the document ([`cost`]), the error
//! codes ([`codes`]), the operation's name for logs and metrics ([`operation`]) and the order
//! of the response's keys ([`order`]).

use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextRequest,
    NextValidation,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Response, ServerError, ServerResult, ValidationResult, Variables};

use super::operation::OperationName;
use super::{codes, cost, order};
use crate::limits::Limits;

/// Extension factory: a fresh pipeline per request.
pub struct Pipeline {
    limits: Option<Arc<Limits>>,
}

impl Pipeline {
    /// The pipeline with the limits on documents.
    pub fn checked(limits: Arc<Limits>) -> Self {
        Self {
            limits: Some(limits),
        }
    }

    /// The pipeline without them (the baseline of the benchmark of the limits).
    pub fn unchecked() -> Self {
        Self { limits: None }
    }
}

impl ExtensionFactory for Pipeline {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RequestPipeline {
            limits: self.limits.clone(),
            document: Mutex::new(None),
        })
    }
}

struct RequestPipeline {
    limits: Option<Arc<Limits>>,
    /// The parsed document, kept to put the response's keys in order.
    document: Mutex<Option<ExecutableDocument>>,
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
        if let Some(limits) = &self.limits {
            cost::check_text(limits, query)?;
        }
        let document = next
            .run(ctx, query, variables)
            .await
            .map_err(codes::parse_failed)?;
        if let Some(limits) = &self.limits {
            cost::check_document(limits, &ctx.schema_env.registry, &document, variables)?;
        }
        if let Some(name) = ctx.data_opt::<OperationName>() {
            name.record(&document);
        }
        if let Ok(mut kept) = self.document.lock() {
            *kept = Some(document.clone());
        }
        Ok(document)
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
