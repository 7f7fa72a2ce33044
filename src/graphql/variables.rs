//! Whether a request's variable values would pass validation, for a document that has
//! passed it once.
//!
//! Of async-graphql's validation rules only one depends on the variables: it puts their
//! values in the arguments and checks each argument against its type. For a document already
//! known to be valid, [`surely_valid`] checks the values against the types the operation
//! declares for its variables instead, without going through the document. It answers `true`
//! only when validation is certain to pass: a value valid for its variable's type is valid
//! where the variable may be used (a rule on the document sees to that), except for a `null`
//! given to a nullable variable used where `null` is not allowed (when the argument has a
//! default), so an explicit `null` answers `false`. On `false` the request goes through
//! validation, which reports the error in its own words.

use async_graphql::Variables;
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument};
use async_graphql::registry::{MetaType, MetaTypeName, Registry};
use async_graphql_value::ConstValue;

/// How deep input values are followed; deeper ones answer `false` (validation will judge).
const MAX_DEPTH: usize = 32;

/// Whether every value `variables` gives to the chosen operation of `document` is surely
/// valid for the variable's declared type.
pub fn surely_valid(
    registry: &Registry,
    document: &ExecutableDocument,
    operation_name: Option<&str>,
    variables: &Variables,
) -> bool {
    let operation = match (&document.operations, operation_name) {
        (DocumentOperations::Single(operation), None) => operation,
        (DocumentOperations::Multiple(operations), Some(name)) => match operations.get(name) {
            Some(operation) => operation,
            None => return false,
        },
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
            match operations.values().next() {
                Some(operation) => operation,
                None => return false,
            }
        }
        _ => return false,
    };
    operation
        .node
        .variable_definitions
        .iter()
        .all(|definition| {
            let definition = &definition.node;
            match variables.get(&definition.name.node) {
                None => true,
                Some(ConstValue::Null) => false,
                Some(value) => valid_for(registry, &definition.var_type.node.to_string(), value, 0),
            }
        })
}

/// Whether `value` is valid input for the type written `type_name` (`[ID!]!`).
fn valid_for(registry: &Registry, type_name: &str, value: &ConstValue, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    match MetaTypeName::create(type_name) {
        MetaTypeName::NonNull(inner) => {
            !matches!(value, ConstValue::Null) && valid_for(registry, inner, value, depth + 1)
        }
        MetaTypeName::List(inner) => match value {
            ConstValue::Null => true,
            ConstValue::List(items) => items
                .iter()
                .all(|item| valid_for(registry, inner, item, depth + 1)),
            // A single value stands for a list of one.
            single => valid_for(registry, inner, single, depth + 1),
        },
        MetaTypeName::Named(name) => {
            if matches!(value, ConstValue::Null) {
                return true;
            }
            match registry.types.get(name) {
                Some(MetaType::Scalar { is_valid, .. }) => {
                    is_valid.as_ref().is_none_or(|is_valid| is_valid(value))
                }
                Some(MetaType::Enum { enum_values, .. }) => match value {
                    ConstValue::Enum(name) => enum_values.contains_key(name.as_str()),
                    ConstValue::String(name) => enum_values.contains_key(name.as_str()),
                    _ => false,
                },
                Some(MetaType::InputObject {
                    input_fields,
                    oneof,
                    ..
                }) => {
                    let ConstValue::Object(given) = value else {
                        return false;
                    };
                    if *oneof
                        && (given.len() != 1
                            || given
                                .values()
                                .any(|value| matches!(value, ConstValue::Null)))
                    {
                        return false;
                    }
                    let all_known = given
                        .keys()
                        .all(|key| input_fields.contains_key(key.as_str()));
                    all_known
                        && input_fields
                            .values()
                            .all(|field| match given.get(field.name.as_str()) {
                                Some(value) => valid_for(registry, &field.ty, value, depth + 1),
                                None => {
                                    !MetaTypeName::create(&field.ty).is_non_null()
                                        || field.default_value.is_some()
                                }
                            })
                }
                _ => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::parse_query;
    use async_graphql::{ID, InputType};
    use serde_json::json;

    use super::*;
    use crate::graphql::agency::ReportFilterInput;

    fn check(query: &str, operation: Option<&str>, variables: serde_json::Value) -> bool {
        let mut registry = Registry::default();
        <ReportFilterInput as InputType>::create_type_info(&mut registry);
        <ID as InputType>::create_type_info(&mut registry);
        <i32 as InputType>::create_type_info(&mut registry);
        <String as InputType>::create_type_info(&mut registry);
        let document = parse_query(query).unwrap();
        surely_valid(
            &registry,
            &document,
            operation,
            &Variables::from_json(variables),
        )
    }

    const REPORTS: &str = "query Records($agencyId: ID!, $filter: ReportFilterInput, \
        $first: Int = 20, $after: String) { agency(id: $agencyId) { \
        reports(filter: $filter, first: $first, after: $after) { totalCount } } }";

    #[test]
    fn values_of_their_variables_types_are_surely_valid() {
        assert!(check(REPORTS, None, json!({ "agencyId": "12" })));
        assert!(check(REPORTS, None, json!({ "agencyId": 12, "first": 5 })));
        assert!(check(
            REPORTS,
            Some("Records"),
            json!({ "agencyId": "12", "filter": { "statuses": ["PUBLISHED"] } })
        ));
        assert!(check(
            REPORTS,
            None,
            json!({ "agencyId": "12", "filter": { "statuses": "DRAFT" } })
        ));
    }

    #[test]
    fn anything_else_is_left_to_validation() {
        assert!(!check(REPORTS, None, json!({ "agencyId": true })));
        assert!(!check(
            REPORTS,
            None,
            json!({ "agencyId": "1", "first": "ten" })
        ));
        assert!(!check(
            REPORTS,
            None,
            json!({ "agencyId": "1", "first": 1.5 })
        ));
        assert!(!check(
            REPORTS,
            None,
            json!({ "agencyId": "1", "filter": { "statuses": ["LOST"] } })
        ));
        assert!(!check(
            REPORTS,
            None,
            json!({ "agencyId": "1", "filter": { "unknown": 1 } })
        ));
        assert!(!check(
            REPORTS,
            None,
            json!({ "agencyId": "1", "filter": 3 })
        ));
        assert!(!check(
            REPORTS,
            None,
            json!({ "agencyId": "1", "after": null })
        ));
        assert!(!check(REPORTS, Some("Other"), json!({ "agencyId": "1" })));
    }
}
