//! Every error a client sees has an `extensions.code`. Errors of the API carry theirs; errors
//! async-graphql raises itself before any resolver runs (a query that does not parse or
//! validate, a variable of the wrong type) are the client's input: BAD_USER_INPUT.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextRequest};
use async_graphql::{Response, Value};

use crate::error::ErrorCode;

/// The extension factory.
pub struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodesExtension)
    }
}

struct ErrorCodesExtension;

#[async_graphql::async_trait::async_trait]
impl Extension for ErrorCodesExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        for error in &mut response.errors {
            let extensions = error.extensions.get_or_insert_with(Default::default);
            if extensions.get("code").is_none() {
                extensions.set("code", Value::from(ErrorCode::BadUserInput.as_str()));
            }
        }
        response
    }
}
