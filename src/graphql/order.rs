//! Response keys in the order of the selection set, as the GraphQL specification requires
//! ("CollectFields" order). async-graphql resolves the fields of an object concurrently and
//! keeps them in the order they finish; this puts each object's keys back in the order the
//! document asked for them, fragments expanded in place.

use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery,
};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Response, ServerResult, Value, Variables};

/// Extension factory: one instance per request, remembering the request's document.
pub struct SelectionOrder;

impl ExtensionFactory for SelectionOrder {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(SelectionOrderExtension::default())
    }
}

#[derive(Default)]
struct SelectionOrderExtension {
    document: Mutex<Option<ExecutableDocument>>,
}

#[async_graphql::async_trait::async_trait]
impl Extension for SelectionOrderExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        if let Ok(mut kept) = self.document.lock() {
            *kept = Some(document.clone());
        }
        Ok(document)
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
            let operation = document.operations.iter().find(|(name, _)| {
                operation_name.is_none() || name.map(|n| n.as_str()) == operation_name
            });
            if let Some((_, operation)) = operation {
                let plan = Plan::of(&document, &[&operation.node.selection_set.node]);
                plan.apply(&document, &mut response.data);
            }
        }
        response
    }
}

/// The response keys of some selection sets (merged, as one object's), in order, each with
/// the selection sets of its fields.
struct Plan<'a> {
    keys: Vec<(&'a str, Vec<&'a SelectionSet>)>,
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
                    let key = field.response_key().node.as_str();
                    let children = &field.selection_set.node;
                    match self.keys.iter_mut().find(|(known, _)| *known == key) {
                        Some((_, sets)) => sets.push(children),
                        None => self.keys.push((key, vec![children])),
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

    fn position(&self, key: &str) -> usize {
        self.keys
            .iter()
            .position(|(known, _)| *known == key)
            .unwrap_or(usize::MAX)
    }

    fn apply(&self, document: &'a ExecutableDocument, value: &mut Value) {
        match value {
            Value::Object(object) => {
                object.sort_by(|a, _, b, _| self.position(a).cmp(&self.position(b)));
                for (key, sets) in &self.keys {
                    if sets.iter().all(|set| set.items.is_empty()) {
                        continue;
                    }
                    if let Some(child) = object.get_mut(*key) {
                        Plan::of(document, sets).apply(document, child);
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
