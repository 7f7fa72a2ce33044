//! Field errors as the GraphQL specification handles them ("Handling Execution Errors"): a
//! field that failed is null, and when its type does not allow null, the null goes up to the
//! nearest field or list item that does, up to `data` itself. async-graphql leaves a failed
//! field out of its object instead, which clients generated from the schema cannot read (a
//! non-null field missing from an object that is there). The request
//! [`pipeline`](super::pipeline) applies this to every response with errors, before it puts
//! the keys in order.

use async_graphql::parser::types::{
    ExecutableDocument, Field, OperationType, Selection, SelectionSet,
};
use async_graphql::registry::Registry;
use async_graphql::{PathSegment, Response, Value};

/// Puts the nulls of `response`'s field errors where the specification has them, for the
/// operation named `operation_name` (or the only one) of `document`.
pub fn propagate(
    registry: &Registry,
    document: &ExecutableDocument,
    operation_name: Option<&str>,
    response: &mut Response,
) {
    if response.errors.iter().all(|error| error.path.is_empty()) {
        return;
    }
    let Some((_, operation)) = document
        .operations
        .iter()
        .find(|(name, _)| operation_name.is_none() || name.map(|n| n.as_str()) == operation_name)
    else {
        return;
    };
    let root = match operation.node.ty {
        OperationType::Query => Some(registry.query_type.as_str()),
        OperationType::Mutation => registry.mutation_type.as_deref(),
        OperationType::Subscription => registry.subscription_type.as_deref(),
    };
    let Some(root) = root else { return };
    // Where each error's null goes: the failed field itself when it may be null, else the
    // nearest position above it that may be; none of them, `data` itself.
    let mut targets: Vec<Vec<PathSegment>> = Vec::new();
    for error in &response.errors {
        if error.path.is_empty() {
            continue;
        }
        let Some(nullable) = nullability(
            registry,
            document,
            root,
            &operation.node.selection_set.node,
            &error.path,
        ) else {
            continue;
        };
        match nullable.iter().rposition(|&nullable| nullable) {
            Some(at) => targets.push(error.path[..=at].to_vec()),
            None => {
                response.data = Value::Null;
                return;
            }
        }
    }
    // Outer positions first: an inner one under a null set before it needs nothing more.
    targets.sort_by_key(Vec::len);
    // async-graphql answers null for an object none of whose selected fields worked (`data`
    // included); on an error's path such a null stands for the object, and becomes one.
    if matches!(response.data, Value::Null) && !targets.is_empty() {
        response.data = Value::Object(Default::default());
    }
    let mut applied: Vec<&[PathSegment]> = Vec::new();
    for target in &targets {
        if applied
            .iter()
            .any(|done| target.len() >= done.len() && same(&target[..done.len()], done))
        {
            continue;
        }
        set_null(&mut response.data, target);
        applied.push(target);
    }
}

fn same(a: &[PathSegment], b: &[PathSegment]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|pair| match pair {
            (PathSegment::Field(x), PathSegment::Field(y)) => x == y,
            (PathSegment::Index(x), PathSegment::Index(y)) => x == y,
            _ => false,
        })
}

/// Whether each position of `path` (a field by its response key, or a list item) may be null,
/// from the schema's types; none when the path does not follow the document.
fn nullability<'a>(
    registry: &'a Registry,
    document: &'a ExecutableDocument,
    root: &'a str,
    set: &'a SelectionSet,
    path: &[PathSegment],
) -> Option<Vec<bool>> {
    let mut nullable = Vec::with_capacity(path.len());
    // The type of the value at the current position, as the schema writes it (`[Report!]!`),
    // and the selection sets that apply to it.
    let mut ty: &'a str = root;
    let mut sets = vec![set];
    for segment in path {
        match segment {
            PathSegment::Field(key) => {
                let parent = named(ty);
                let mut fields = Vec::new();
                for set in &sets {
                    collect(document, set, parent, key, &mut fields, &mut Vec::new());
                }
                let (field, on) = fields.first()?;
                let definition = registry.types.get(*on)?.field_by_name(&field.name.node)?;
                ty = &definition.ty;
                nullable.push(!ty.ends_with('!'));
                sets = fields
                    .iter()
                    .map(|(field, _)| &field.selection_set.node)
                    .collect();
            }
            PathSegment::Index(_) => {
                let item = ty
                    .trim_end_matches('!')
                    .strip_prefix('[')?
                    .strip_suffix(']')?;
                ty = item;
                nullable.push(!ty.ends_with('!'));
            }
        }
    }
    Some(nullable)
}

/// The named type of a type such as `[Report!]!`.
fn named(ty: &str) -> &str {
    ty.trim_matches(|c| matches!(c, '[' | ']' | '!'))
}

/// The fields of `set` (fragments expanded) answering to response key `key`, each with the
/// type its definition is looked up on: the fragment's type condition where there is one,
/// else `parent`.
fn collect<'a>(
    document: &'a ExecutableDocument,
    set: &'a SelectionSet,
    parent: &'a str,
    key: &str,
    found: &mut Vec<(&'a Field, &'a str)>,
    expanding: &mut Vec<&'a str>,
) {
    for selection in &set.items {
        match &selection.node {
            Selection::Field(field) => {
                if field.node.response_key().node.as_str() == key {
                    found.push((&field.node, parent));
                }
            }
            Selection::InlineFragment(fragment) => {
                let on = fragment
                    .node
                    .type_condition
                    .as_ref()
                    .map_or(parent, |condition| condition.node.on.node.as_str());
                collect(
                    document,
                    &fragment.node.selection_set.node,
                    on,
                    key,
                    found,
                    expanding,
                );
            }
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                if expanding.contains(&name) {
                    continue;
                }
                if let Some(fragment) = document.fragments.get(&spread.node.fragment_name.node) {
                    expanding.push(name);
                    collect(
                        document,
                        &fragment.node.selection_set.node,
                        fragment.node.type_condition.node.on.node.as_str(),
                        key,
                        found,
                        expanding,
                    );
                    expanding.pop();
                }
            }
        }
    }
}

/// Sets the value at `path` to null: the last segment's key is added when missing. A null on
/// the way (an object whose every field failed) becomes an object.
fn set_null(data: &mut Value, path: &[PathSegment]) {
    let Some((last, above)) = path.split_last() else {
        *data = Value::Null;
        return;
    };
    let mut value = data;
    for segment in above {
        if matches!(value, Value::Null) {
            *value = Value::Object(Default::default());
        }
        let next = match (segment, value) {
            (PathSegment::Field(key), Value::Object(object)) => Some(
                object
                    .entry(async_graphql::Name::new(key))
                    .or_insert(Value::Null),
            ),
            (PathSegment::Index(index), Value::List(items)) => items.get_mut(*index),
            _ => None,
        };
        let Some(next) = next else { return };
        value = next;
    }
    if matches!(value, Value::Null) {
        *value = Value::Object(Default::default());
    }
    match (last, value) {
        (PathSegment::Field(key), Value::Object(object)) => {
            object.insert(async_graphql::Name::new(key), Value::Null);
        }
        (PathSegment::Index(index), Value::List(items)) => {
            if let Some(item) = items.get_mut(*index) {
                *item = Value::Null;
            }
        }
        _ => {}
    }
}
