//! Every error a client sees has an `extensions.code`. Errors of the API carry theirs; errors
//! async-graphql raises itself get Apollo's codes: `GRAPHQL_PARSE_FAILED` for a document
//! that does not parse, `GRAPHQL_VALIDATION_FAILED` for one that does not validate, and
//! `BAD_USER_INPUT` for a value of the wrong type and the rest (an unknown operation name).
//! Applied by the request [`pipeline`](super::pipeline).

use async_graphql::{Response, ServerError, Value};

use crate::error::ErrorCode;

/// The code of a document that does not parse.
pub const PARSE_FAILED: &str = "GRAPHQL_PARSE_FAILED";
/// The code of a document that does not validate against the schema.
pub const VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";

/// Sets `code` on an error that has none.
fn with_code(mut error: ServerError, code: &str) -> ServerError {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_none() {
        extensions.set("code", Value::from(code));
    }
    error
}

/// A parse error, with its code.
pub fn parse_failed(error: ServerError) -> ServerError {
    with_code(error, PARSE_FAILED)
}

/// Validation errors, with their codes: a value of the wrong type for an argument or a
/// variable is the user's input, as Apollo has it; the rest is a document that does not fit.
pub fn validation_failed(errors: Vec<ServerError>) -> Vec<ServerError> {
    errors
        .into_iter()
        .map(|error| {
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
}

/// Gives every error of a response that has no code yet `BAD_USER_INPUT`.
pub fn complete(response: &mut Response) {
    for error in &mut response.errors {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get("code").is_none() {
            extensions.set("code", Value::from(ErrorCode::BadUserInput.as_str()));
        }
    }
}
