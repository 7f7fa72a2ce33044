//! The name of the operation a request runs, for the access log and the metrics: the one the
//! client named, or the only operation of its document.

use std::sync::{Arc, Mutex};

use async_graphql::ServerResult;
use async_graphql::Variables;
use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument};

/// Where a request's operation name is written once its document is parsed.
#[derive(Debug, Clone, Default)]
pub struct OperationName(Arc<Mutex<Option<String>>>);

impl OperationName {
    /// The name, if the document's only operation has one.
    pub fn get(&self) -> Option<String> {
        self.0.lock().ok().and_then(|name| name.clone())
    }
}

/// Extension factory: fills in the request's [`OperationName`], when it has one.
pub struct RecordOperationName;

impl ExtensionFactory for RecordOperationName {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RecordOperationName)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for RecordOperationName {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        // An anonymous operation is `Single`; named ones are keyed by name.
        if let DocumentOperations::Multiple(operations) = &document.operations
            && operations.len() == 1
            && let Some(slot) = ctx.data_opt::<OperationName>()
            && let Ok(mut name) = slot.0.lock()
        {
            *name = operations.keys().next().map(ToString::to_string);
        }
        Ok(document)
    }
}
