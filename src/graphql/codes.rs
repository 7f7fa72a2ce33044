//! Every error a client sees has an `extensions.code`. Errors of the API carry theirs; errors
//! async-graphql raises itself get Apollo's codes: `GRAPHQL_PARSE_FAILED` for a document
//! that does not parse, `GRAPHQL_VALIDATION_FAILED` for one that does not validate, and
//! `BAD_USER_INPUT` for the rest (a variable of the wrong type, an unknown operation name).

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextRequest, NextValidation,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Response, ServerError, ServerResult, ValidationResult, Value, Variables};

use crate::error::ErrorCode;

/// The code of a document that does not parse.
pub const PARSE_FAILED: &str = "GRAPHQL_PARSE_FAILED";
/// The code of a document that does not validate against the schema.
pub const VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";

/// The extension factory.
pub struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodesExtension)
    }
}

struct ErrorCodesExtension;

/// A parse error, with its code.
pub fn parse_failed(error: ServerError) -> ServerError {
    with_code(error, PARSE_FAILED)
}

/// Sets `code` on an error that has none.
fn with_code(mut error: ServerError, code: &str) -> ServerError {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_none() {
        extensions.set("code", Value::from(code));
    }
    error
}

#[async_graphql::async_trait::async_trait]
impl Extension for ErrorCodesExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        response.errors = std::mem::take(&mut response.errors)
            .into_iter()
            .map(|error| with_code(error, ErrorCode::BadUserInput.as_str()))
            .collect();
        response
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        // Errors of the limits (inner extensions) carry their code already.
        next.run(ctx, query, variables)
            .await
            .map_err(|error| with_code(error, PARSE_FAILED))
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|errors| {
            errors
                .into_iter()
                .map(|error| {
                    // A value of the wrong type for an argument or a variable is the user's
                    // input, as Apollo has it; the rest is a document that does not fit.
                    let input = error.message.starts_with("Invalid value for argument")
                        || error.message.starts_with("Variable");
                    let code = if input {
                        ErrorCode::BadUserInput.as_str()
                    } else {
                        VALIDATION_FAILED
                    };
                    with_code(error, code)
                })
                .collect()
        })
    }
}
