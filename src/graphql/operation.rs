//! The name of the operation a request runs, for the access log and the metrics: the one the
//! client named, or the only operation of its document. Recorded by the request
//! [`pipeline`](super::pipeline).

use std::sync::{Arc, Mutex};

use async_graphql::parser::types::{DocumentOperations, ExecutableDocument};

/// Where a request's operation name is written once its document is parsed.
#[derive(Debug, Clone, Default)]
pub struct OperationName(Arc<Mutex<Option<String>>>);

impl OperationName {
    /// The name, if the document's only operation has one.
    pub fn get(&self) -> Option<String> {
        self.0.lock().ok().and_then(|name| name.clone())
    }

    /// Writes the name of the document's only operation, if it has one.
    pub fn record(&self, document: &ExecutableDocument) {
        // An anonymous operation is `Single`; named ones are keyed by name.
        if let DocumentOperations::Multiple(operations) = &document.operations
            && operations.len() == 1
            && let Ok(mut name) = self.0.lock()
        {
            *name = operations.keys().next().map(ToString::to_string);
        }
    }
}
