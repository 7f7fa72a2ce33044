//! Response keys in the order of the selection set, as the GraphQL specification requires
//! ("CollectFields" order). async-graphql resolves the fields of an object concurrently and
//! keeps them in the order they finish; this puts each object's keys back in the order the
//! document asked for them, fragments expanded in place. Applied by the request
//! [`pipeline`](super::pipeline).

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use std::cell::OnceCell;

use async_graphql::{Response, Value};

/// Puts the keys of every object of `response` in the order `document` selected them, for the
/// operation named `operation_name` (or the only one).
pub fn restore(
    document: &ExecutableDocument,
    operation_name: Option<&str>,
    response: &mut Response,
) {
    let operation = document
        .operations
        .iter()
        .find(|(name, _)| operation_name.is_none() || name.map(|n| n.as_str()) == operation_name);
    if let Some((_, operation)) = operation {
        let plan = Plan::of(document, &[&operation.node.selection_set.node]);
        plan.apply(document, &mut response.data);
    }
}

/// The response keys of some selection sets (merged, as one object's), in order, each with
/// the selection sets of its fields and, once needed, their own plan (made once per response,
/// however many objects of a list share it).
struct Plan<'a> {
    keys: Vec<Key<'a>>,
}

struct Key<'a> {
    name: &'a str,
    sets: Vec<&'a SelectionSet>,
    plan: OnceCell<Plan<'a>>,
}

impl<'a> Plan<'a> {
    fn of(document: &'a ExecutableDocument, sets: &[&'a SelectionSet]) -> Self {
        let mut plan = Self { keys: Vec::new() };
        let mut expanding = Vec::new();
        for set in sets {
            plan.collect(document, set, &mut expanding);
        }
        plan
    }

    fn collect(
        &mut self,
        document: &'a ExecutableDocument,
        set: &'a SelectionSet,
        expanding: &mut Vec<&'a str>,
    ) {
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    let name = field.response_key().node.as_str();
                    let children = &field.selection_set.node;
                    match self.keys.iter_mut().find(|key| key.name == name) {
                        Some(key) => key.sets.push(children),
                        None => self.keys.push(Key {
                            name,
                            sets: vec![children],
                            plan: OnceCell::new(),
                        }),
                    }
                }
                Selection::InlineFragment(fragment) => {
                    self.collect(document, &fragment.node.selection_set.node, expanding);
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    if expanding.contains(&name) {
                        continue;
                    }
                    if let Some(fragment) = document.fragments.get(&spread.node.fragment_name.node)
                    {
                        expanding.push(name);
                        self.collect(document, &fragment.node.selection_set.node, expanding);
                        expanding.pop();
                    }
                }
            }
        }
    }

    fn position(&self, name: &str) -> usize {
        self.keys
            .iter()
            .position(|key| key.name == name)
            .unwrap_or(usize::MAX)
    }

    fn apply(&self, document: &'a ExecutableDocument, value: &mut Value) {
        match value {
            Value::Object(object) => {
                object.sort_by(|a, _, b, _| self.position(a).cmp(&self.position(b)));
                for key in &self.keys {
                    if key.sets.iter().all(|set| set.items.is_empty()) {
                        continue;
                    }
                    if let Some(child) = object.get_mut(key.name) {
                        key.plan
                            .get_or_init(|| Plan::of(document, &key.sets))
                            .apply(document, child);
                    }
                }
            }
            Value::List(items) => {
                for item in items {
                    self.apply(document, item);
                }
            }
            _ => {}
        }
    }
}
