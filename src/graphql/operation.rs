//! The name of the operation a request runs, for the access log and the metrics: the one the
//! client named, or the only operation of its document. Recorded by the request
//! [`pipeline`](super::pipeline).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationType};

/// Where a request's operation name is written once its document is parsed, and whether the
/// document holds anything but queries.
#[derive(Debug, Clone, Default)]
pub struct OperationName(Arc<Mutex<Option<String>>>, Arc<AtomicBool>, Arc<AtomicBool>);

impl OperationName {
    /// The name, if the document's only operation has one.
    pub fn get(&self) -> Option<String> {
        self.0.lock().ok().and_then(|name| name.clone())
    }

    /// Whether the document was parsed and holds queries only.
    pub fn queries_only(&self) -> bool {
        self.2.load(Ordering::SeqCst) && self.1.load(Ordering::SeqCst)
    }

    /// Whether the document was parsed and holds a mutation (or subscription).
    pub fn writes(&self) -> bool {
        self.2.load(Ordering::SeqCst) && !self.1.load(Ordering::SeqCst)
    }

    /// Writes the name of the document's only operation, if it has one.
    pub fn record(&self, document: &ExecutableDocument) {
        let queries_only = document
            .operations
            .iter()
            .all(|(_, operation)| operation.node.ty == OperationType::Query);
        self.1.store(queries_only, Ordering::SeqCst);
        self.2.store(true, Ordering::SeqCst);
        // An anonymous operation is `Single`; named ones are keyed by name.
        if let DocumentOperations::Multiple(operations) = &document.operations
            && operations.len() == 1
            && let Ok(mut name) = self.0.lock()
        {
            *name = operations.keys().next().map(ToString::to_string);
        }
    }
}
