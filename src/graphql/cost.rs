//! The limits on GraphQL documents, enforced before anything runs: tokens in the text (before
//! it is parsed), then on the parsed document depth, fields, aliases, root fields, directives
//! per location, sign-ins per request, the sizes of strings and lists in arguments and
//! variables, and an estimate of the work the operation asks for. Fragments are expanded and
//! `__typename` and introspection fields count like any other field (async-graphql's own
//! validation leaves `__typename` out). Applied by the request [`pipeline`](super::pipeline).

use async_graphql::parser::types::{
    Directive, ExecutableDocument, OperationType, Selection, SelectionSet,
};
use async_graphql::registry::Registry;
use async_graphql::{ErrorExtensionValues, Name, Positioned, ServerError, Variables};
use async_graphql_value::{ConstValue, Value};

use super::pagination::DEFAULT_PAGE_SIZE;
use crate::limits::{Limits, SIGN_INS_PER_REQUEST, log_refusal};

/// The code of every refusal of this module.
pub const CODE: &str = "QUERY_TOO_COMPLEX";

/// The root mutations that check a password or a refresh token.
const SIGN_IN_FIELDS: [&str; 3] = ["signIn", "renewSession", "acceptInvitation"];
/// The items a paged field returns when `first` is not given.
fn default_page(field: &str) -> u64 {
    match field {
        // Pages of changes and of an upload's values: 100 by default.
        "datapointChanges" | "values" => 100,
        _ => DEFAULT_PAGE_SIZE.unsigned_abs(),
    }
}

/// Fields that each run a statement of their own on a connection of their own (a change
/// stream's page): resolved at most once per request, wherever they are in the document.
const ONCE_PER_REQUEST: [&str; 1] = ["datapointChanges"];

/// A limit exceeded: its setting's name, its value, and what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    /// The limit (the setting's name, lower case).
    pub limit: &'static str,
    /// Its configured value.
    pub max: u64,
    /// The message for the client.
    pub message: String,
}

impl From<Exceeded> for ServerError {
    fn from(exceeded: Exceeded) -> Self {
        log_refusal(exceeded.limit, &exceeded.message);
        let mut extensions = ErrorExtensionValues::default();
        extensions.set("code", CODE);
        extensions.set("limit", exceeded.limit);
        extensions.set("max", exceeded.max);
        let mut error = ServerError::new(exceeded.message, None);
        error.extensions = Some(extensions);
        error
    }
}

fn exceeded(limit: &'static str, max: usize, message: String) -> Exceeded {
    Exceeded {
        limit,
        max: max as u64,
        message,
    }
}

/// Counts the tokens of a document and how deep its brackets nest, without parsing it, and
/// stops at the first limit exceeded. The parser recurses on brackets, so this runs first.
pub fn check_text(limits: &Limits, text: &str) -> Result<(), Exceeded> {
    let max_nesting = limits.max_query_depth.saturating_mul(2).saturating_add(8);
    let bytes = text.as_bytes();
    let (mut at, mut tokens, mut nesting) = (0usize, 0usize, 0usize);
    while at < bytes.len() {
        let byte = bytes[at];
        let start = at;
        at += 1;
        match byte {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => continue,
            b'#' => {
                while at < bytes.len() && !matches!(bytes[at], b'\n' | b'\r') {
                    at += 1;
                }
                continue;
            }
            b'"' if bytes[start..].starts_with(b"\"\"\"") => {
                at = start + 3;
                while at < bytes.len() && !bytes[at..].starts_with(b"\"\"\"") {
                    at += if bytes[at..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                at = (at + 3).min(bytes.len());
            }
            b'"' => {
                while at < bytes.len() && !matches!(bytes[at], b'"' | b'\n' | b'\r') {
                    at += if bytes[at] == b'\\' { 2 } else { 1 };
                }
                at = (at + 1).min(bytes.len());
            }
            b'.' if bytes[start..].starts_with(b"...") => at = start + 3,
            b'{' | b'(' | b'[' => {
                nesting += 1;
                if nesting > max_nesting {
                    return Err(exceeded(
                        "max_query_depth",
                        limits.max_query_depth,
                        format!(
                            "the document nests brackets deeper than {max_nesting} levels \
                             (MAX_QUERY_DEPTH is {})",
                            limits.max_query_depth
                        ),
                    ));
                }
            }
            b'}' | b')' | b']' => nesting = nesting.saturating_sub(1),
            // A number: digits, a fraction, an exponent.
            byte if byte.is_ascii_digit() || byte == b'-' => {
                while at < bytes.len()
                    && (bytes[at].is_ascii_alphanumeric() || bytes[at] == b'.')
                    && !bytes[at..].starts_with(b"...")
                {
                    at += 1;
                }
            }
            // A name.
            byte if byte.is_ascii_alphabetic() || byte == b'_' => {
                while at < bytes.len() && (bytes[at].is_ascii_alphanumeric() || bytes[at] == b'_') {
                    at += 1;
                }
            }
            _ => {}
        }
        tokens += 1;
        if tokens > limits.max_query_tokens {
            return Err(exceeded(
                "max_query_tokens",
                limits.max_query_tokens,
                format!(
                    "the document has more than {} tokens",
                    limits.max_query_tokens
                ),
            ));
        }
    }
    Ok(())
}

/// What a walk over an operation found so far.
struct Walk<'a> {
    limits: &'a Limits,
    registry: &'a Registry,
    document: &'a ExecutableDocument,
    variables: &'a Variables,
    /// Default values of the current operation's variables.
    defaults: Vec<(&'a Name, &'a ConstValue)>,
    fields: usize,
    aliases: usize,
    /// Fragments being expanded, innermost last: a cycle is left to validation to report.
    expanding: Vec<&'a Name>,
    /// How many times the selection set being walked is expected to be resolved.
    times: u64,
    /// Resolutions of the [`ONCE_PER_REQUEST`] fields in the current operation.
    once: u64,
}

/// Checks a parsed document against every limit.
pub fn check_document(
    limits: &Limits,
    registry: &Registry,
    document: &ExecutableDocument,
    variables: &Variables,
) -> Result<(), Exceeded> {
    for (_, value) in variables.iter() {
        check_const_value(limits, value)?;
    }
    for fragment in document.fragments.values() {
        check_directives(limits, &fragment.node.directives)?;
    }
    let mut walk = Walk {
        limits,
        registry,
        document,
        variables,
        defaults: Vec::new(),
        fields: 0,
        aliases: 0,
        expanding: Vec::new(),
        times: 1,
        once: 0,
    };
    for (_, operation) in document.operations.iter() {
        let operation = &operation.node;
        check_directives(limits, &operation.directives)?;
        for variable in &operation.variable_definitions {
            check_directives(limits, &variable.node.directives)?;
            if let Some(default) = &variable.node.default_value {
                check_const_value(limits, &default.node)?;
            }
        }
        let root_type = match operation.ty {
            OperationType::Query => Some(registry.query_type.as_str()),
            OperationType::Mutation => registry.mutation_type.as_deref(),
            OperationType::Subscription => registry.subscription_type.as_deref(),
        };
        walk.defaults = operation
            .variable_definitions
            .iter()
            .filter_map(|variable| {
                let default = variable.node.default_value.as_ref()?;
                Some((&variable.node.name.node, &default.node))
            })
            .collect();
        let mut roots = Vec::new();
        walk.root_fields(&operation.selection_set.node, &mut roots)?;
        if roots.len() > limits.max_root_fields {
            return Err(exceeded(
                "max_root_fields",
                limits.max_root_fields,
                format!(
                    "an operation may select at most {} root fields",
                    limits.max_root_fields
                ),
            ));
        }
        if operation.ty == OperationType::Mutation {
            let sign_ins = roots
                .iter()
                .filter(|name| SIGN_IN_FIELDS.contains(name))
                .count();
            if sign_ins > SIGN_INS_PER_REQUEST {
                return Err(exceeded(
                    "sign_ins_per_request",
                    SIGN_INS_PER_REQUEST,
                    format!(
                        "a request may hold at most {SIGN_INS_PER_REQUEST} signIn, \
                         renewSession or acceptInvitation mutation"
                    ),
                ));
            }
        }
        walk.times = 1;
        walk.once = 0;
        let complexity = walk.cost(&operation.selection_set.node, root_type, 1, 1)?;
        if complexity > limits.max_query_complexity {
            return Err(Exceeded {
                limit: "max_query_complexity",
                max: limits.max_query_complexity,
                message: format!(
                    "the operation's estimated cost is {complexity}, above the limit of {}; \
                     ask for fewer items (`first`/`last`) or fewer nested lists",
                    limits.max_query_complexity
                ),
            });
        }
    }
    Ok(())
}

fn check_directives(limits: &Limits, directives: &[Positioned<Directive>]) -> Result<(), Exceeded> {
    if directives.len() > limits.max_directives_per_location {
        return Err(exceeded(
            "max_directives_per_location",
            limits.max_directives_per_location,
            format!(
                "at most {} directives may stand in one place",
                limits.max_directives_per_location
            ),
        ));
    }
    for directive in directives {
        for (_, value) in &directive.node.arguments {
            check_value(limits, &value.node)?;
        }
    }
    Ok(())
}

fn string_too_long(limits: &Limits, text: &str) -> bool {
    text.len() > limits.max_string_length
        && (text.len() > limits.max_string_length.saturating_mul(4)
            || text.chars().count() > limits.max_string_length)
}

fn too_long(limits: &Limits, what: &str) -> Exceeded {
    let (limit, max) = if what == "string" {
        ("max_string_length", limits.max_string_length)
    } else {
        ("max_list_length", limits.max_list_length)
    };
    let unit = if what == "string" {
        "characters"
    } else {
        "items"
    };
    exceeded(
        limit,
        max,
        format!("a {what} argument may hold at most {max} {unit}"),
    )
}

fn check_const_value(limits: &Limits, value: &ConstValue) -> Result<(), Exceeded> {
    match value {
        ConstValue::String(text) if string_too_long(limits, text) => {
            Err(too_long(limits, "string"))
        }
        ConstValue::List(items) if items.len() > limits.max_list_length => {
            Err(too_long(limits, "list"))
        }
        ConstValue::List(items) => items
            .iter()
            .try_for_each(|item| check_const_value(limits, item)),
        ConstValue::Object(fields) => fields
            .values()
            .try_for_each(|item| check_const_value(limits, item)),
        _ => Ok(()),
    }
}

fn check_value(limits: &Limits, value: &Value) -> Result<(), Exceeded> {
    match value {
        Value::String(text) if string_too_long(limits, text) => Err(too_long(limits, "string")),
        Value::List(items) if items.len() > limits.max_list_length => Err(too_long(limits, "list")),
        Value::List(items) => items.iter().try_for_each(|item| check_value(limits, item)),
        Value::Object(fields) => fields
            .values()
            .try_for_each(|item| check_value(limits, item)),
        _ => Ok(()),
    }
}

/// The named type of a field type such as `[Report!]!`, and whether it is a list.
fn named_type(ty: &str) -> (&str, bool) {
    (
        ty.trim_matches(|c| matches!(c, '[' | ']' | '!')),
        ty.starts_with('['),
    )
}

impl<'a> Walk<'a> {
    /// Collects the names of an operation's root fields, through fragments.
    fn root_fields(
        &mut self,
        set: &'a SelectionSet,
        names: &mut Vec<&'a str>,
    ) -> Result<(), Exceeded> {
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) => names.push(field.node.name.node.as_str()),
                Selection::InlineFragment(fragment) => {
                    self.root_fields(&fragment.node.selection_set.node, names)?;
                }
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    if self.expanding.contains(&name) {
                        continue;
                    }
                    if let Some(fragment) = self.document.fragments.get(name) {
                        self.expanding.push(name);
                        self.root_fields(&fragment.node.selection_set.node, names)?;
                        self.expanding.pop();
                    }
                }
            }
            if names.len() > self.limits.max_root_fields {
                break;
            }
        }
        Ok(())
    }

    fn count_field(&mut self, aliased: bool) -> Result<(), Exceeded> {
        self.fields += 1;
        if self.fields > self.limits.max_query_fields {
            return Err(exceeded(
                "max_query_fields",
                self.limits.max_query_fields,
                format!(
                    "the document selects more than {} fields (fragments expanded, \
                     __typename included)",
                    self.limits.max_query_fields
                ),
            ));
        }
        if aliased {
            self.aliases += 1;
            if self.aliases > self.limits.max_query_aliases {
                return Err(exceeded(
                    "max_query_aliases",
                    self.limits.max_query_aliases,
                    format!(
                        "the document may alias at most {} fields",
                        self.limits.max_query_aliases
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The value of an integer argument, literal or from a variable (or its default).
    fn integer(&self, value: &Value) -> Option<u64> {
        match value {
            Value::Number(number) => number.as_u64(),
            Value::Variable(variable) => {
                let given = self.variables.get(variable).or_else(|| {
                    self.defaults
                        .iter()
                        .find(|(name, _)| *name == variable)
                        .map(|(_, value)| *value)
                });
                match given {
                    Some(ConstValue::Number(number)) => number.as_u64(),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// How many times a field's selection is expected to be resolved, the field's type, and
    /// for a paged field the size of its pages. In a Relay connection, `edges` and `nodes`
    /// hold one page; its other fields are resolved once.
    fn multiplier(
        &self,
        parent: Option<&str>,
        field: &async_graphql::parser::types::Field,
        page: u64,
    ) -> (u64, Option<&'a str>, u64) {
        let name = field.name.node.as_str();
        let definition = match name {
            "__schema" => return (1, Some("__Schema"), 1),
            "__type" => return (1, Some("__Type"), 1),
            _ => parent
                .and_then(|parent| self.registry.types.get(parent))
                .and_then(|ty| ty.field_by_name(name)),
        };
        let Some(definition) = definition else {
            return (1, None, 1);
        };
        let (child_type, is_list) = named_type(&definition.ty);
        // A series has a point per period in its span, whatever data there is: counted at
        // the longest span a series may have, monthly.
        if parent == Some("MetricSeries") && name == "points" {
            let points = u64::from(self.limits.max_series_years).saturating_mul(12);
            return (points.max(1), Some(child_type), 1);
        }
        let in_connection = parent.is_some_and(|parent| parent.ends_with("Connection"));
        if in_connection && matches!(name, "edges" | "nodes") {
            return (page, Some(child_type), 1);
        }
        // The items of another paged type (a page of changes): as many as the page holds.
        if is_list && page > 1 {
            return (page, Some(child_type), 1);
        }
        if definition.args.contains_key("first") || definition.args.contains_key("last") {
            let requested = field
                .arguments
                .iter()
                .filter(|(argument, _)| matches!(argument.node.as_str(), "first" | "last"))
                .filter_map(|(_, value)| self.integer(&value.node))
                .max()
                .unwrap_or_else(|| default_page(name));
            return (1, Some(child_type), requested);
        }
        let multiplier = if is_list {
            self.limits.list_size_estimate
        } else {
            1
        };
        (multiplier, Some(child_type), 1)
    }

    /// The estimated cost of a selection set at nesting `depth`, counting its fields.
    fn cost(
        &mut self,
        set: &'a SelectionSet,
        parent: Option<&'a str>,
        depth: usize,
        page: u64,
    ) -> Result<u64, Exceeded> {
        if depth > self.limits.max_query_depth {
            return Err(exceeded(
                "max_query_depth",
                self.limits.max_query_depth,
                format!(
                    "the document nests fields deeper than {} levels",
                    self.limits.max_query_depth
                ),
            ));
        }
        let mut total: u64 = 0;
        for selection in &set.items {
            let cost = match &selection.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    check_directives(self.limits, &field.directives)?;
                    for (_, value) in &field.arguments {
                        check_value(self.limits, &value.node)?;
                    }
                    self.count_field(field.alias.is_some())?;
                    let (multiplier, child_type, child_page) = self.multiplier(parent, field, page);
                    if ONCE_PER_REQUEST.contains(&field.name.node.as_str()) {
                        self.once = self.once.saturating_add(self.times);
                        if self.once > 1 {
                            return Err(exceeded(
                                "change_pages_per_request",
                                1,
                                format!(
                                    "a request may read at most one page of {} (select it \
                                     once, outside any list)",
                                    field.name.node
                                ),
                            ));
                        }
                    }
                    let children = if field.selection_set.node.items.is_empty() {
                        0
                    } else {
                        let outer = self.times;
                        self.times = outer.saturating_mul(multiplier);
                        let children =
                            self.cost(&field.selection_set.node, child_type, depth + 1, child_page);
                        self.times = outer;
                        children?
                    };
                    children.saturating_mul(multiplier).saturating_add(1)
                }
                Selection::InlineFragment(fragment) => {
                    let fragment = &fragment.node;
                    check_directives(self.limits, &fragment.directives)?;
                    self.count_field(false)?;
                    let on = fragment
                        .type_condition
                        .as_ref()
                        .map(|condition| condition.node.on.node.as_str())
                        .or(parent);
                    self.cost(&fragment.selection_set.node, on, depth, page)?
                }
                Selection::FragmentSpread(spread) => {
                    let spread = &spread.node;
                    check_directives(self.limits, &spread.directives)?;
                    self.count_field(false)?;
                    let name = &spread.fragment_name.node;
                    match self.document.fragments.get(name) {
                        Some(fragment) if !self.expanding.contains(&name) => {
                            self.expanding.push(name);
                            let on = fragment.node.type_condition.node.on.node.as_str();
                            let cost =
                                self.cost(&fragment.node.selection_set.node, Some(on), depth, page);
                            self.expanding.pop();
                            cost?
                        }
                        _ => 0,
                    }
                }
            };
            total = total.saturating_add(cost);
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use async_graphql::ServerResult;
    use async_graphql::extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextParseQuery,
    };
    use async_graphql::parser::types::ExecutableDocument;

    use super::*;

    /// Stops every request once it is parsed and checked: nothing resolves.
    struct StopAfterChecks;

    impl ExtensionFactory for StopAfterChecks {
        fn create(&self) -> Arc<dyn Extension> {
            Arc::new(StopAfterChecks)
        }
    }

    #[async_graphql::async_trait::async_trait]
    impl Extension for StopAfterChecks {
        async fn parse_query(
            &self,
            ctx: &ExtensionContext<'_>,
            query: &str,
            variables: &Variables,
            next: NextParseQuery<'_>,
        ) -> ServerResult<ExecutableDocument> {
            next.run(ctx, query, variables).await?;
            Err(ServerError::new("passed", None))
        }
    }

    /// The limit a query exceeds, if any.
    fn check(limits: &Limits, query: &str) -> Result<(), Exceeded> {
        use super::super::{Mutation, Query, Subscription};
        let schema = async_graphql::Schema::build(
            Query::default(),
            Mutation::default(),
            Subscription::default(),
        )
        .extension(StopAfterChecks)
        .extension(super::super::pipeline::Pipeline::checked(Arc::new(
            limits.clone(),
        )))
        .finish();
        let response = futures_util::FutureExt::now_or_never(schema.execute(query))
            .expect("checks do not wait");
        let error = &response.errors[0];
        // Passed the checks, or refused by the library itself (a fragment cycle).
        let Some(ConstValue::String(limit)) =
            error.extensions.as_ref().and_then(|e| e.get("limit"))
        else {
            return Ok(());
        };
        Err(Exceeded {
            limit: Box::leak(limit.clone().into_boxed_str()),
            max: 0,
            message: error.message.clone(),
        })
    }

    #[test]
    fn a_series_costs_a_point_per_period_of_the_longest_span() {
        let limits = Limits::default();
        let series = |count: usize| {
            let aliases: String = (0..count)
                .map(|i| {
                    format!(
                        "s{i}: publishedSeries(input: {{metricKey: \"LAW_ENFORCEMENT_ARRESTS\"}}) \
                         {{ points {{ start end value reportedPeriods expectedPeriods \
                         members {{ name label value }} }} }} "
                    )
                })
                .collect();
            format!("{{ agency(id: \"1\") {{ {aliases} }} }}")
        };
        // One series with its members is within the limit; a few dozen are far beyond.
        assert!(check(&limits, &series(1)).is_ok());
        assert_eq!(
            check(&limits, &series(25)).unwrap_err().limit,
            "max_query_complexity"
        );
        let every_agency = "{ agencies(first: 100) { nodes { publishedSeries(input: \
                            {metricKey: \"LAW_ENFORCEMENT_ARRESTS\"}) { points { start end value } } } } }";
        assert_eq!(
            check(&limits, every_agency).unwrap_err().limit,
            "max_query_complexity"
        );
    }

    #[test]
    fn typename_counts_like_any_field() {
        let limits = Limits {
            max_root_fields: usize::MAX,
            ..Limits::default()
        };
        let query = format!(
            "{{ {} }}",
            "__typename ".repeat(limits.max_query_fields + 1)
        );
        assert_eq!(
            check(&limits, &query).unwrap_err().limit,
            "max_query_fields"
        );
    }

    #[test]
    fn fragments_are_expanded_and_cycles_do_not_loop() {
        let limits = Limits {
            max_root_fields: usize::MAX,
            ..Limits::default()
        };
        let mut query = String::from("{ ...F0 }\n");
        for i in 0..20 {
            query.push_str(&format!(
                "fragment F{i} on Query {{ ...F{} ...F{} }}\n",
                i + 1,
                i + 1
            ));
        }
        query.push_str("fragment F20 on Query { __typename }\n");
        assert_eq!(
            check(&limits, &query).unwrap_err().limit,
            "max_query_fields"
        );
        assert!(check(&limits, "{ ...A } fragment A on Query { ...A __typename }").is_ok());
    }

    #[test]
    fn root_fields_aliases_directives_and_sign_ins_are_bounded() {
        let limits = Limits::default();
        let roots = format!("{{ {} }}", "__typename ".repeat(limits.max_root_fields + 1));
        assert_eq!(check(&limits, &roots).unwrap_err().limit, "max_root_fields");
        let aliases: String = (0..=limits.max_query_aliases)
            .map(|i| format!("a{i}: __typename "))
            .collect();
        let aliases = format!("{{ viewer {{ {aliases} }} }}");
        assert_eq!(
            check(&limits, &aliases).unwrap_err().limit,
            "max_query_aliases"
        );
        let directives = format!(
            "{{ __typename {} }}",
            "@skip(if: false) ".repeat(limits.max_directives_per_location + 1)
        );
        assert_eq!(
            check(&limits, &directives).unwrap_err().limit,
            "max_directives_per_location"
        );
        let unknown = format!("{{ __typename {} }}", "@nope ".repeat(2_000));
        assert_eq!(
            check(&limits, &unknown).unwrap_err().limit,
            "max_directives_per_location"
        );
        let sign_ins = "mutation { a: signIn(input: {email: \"a\", password: \"b\"}) { accessToken } \
                        b: signIn(input: {email: \"a\", password: \"c\"}) { accessToken } }";
        assert_eq!(
            check(&limits, sign_ins).unwrap_err().limit,
            "sign_ins_per_request"
        );
        let long = format!(
            "{{ agency(id: \"{}\") {{ name }} }}",
            "x".repeat(limits.max_string_length + 1)
        );
        assert_eq!(
            check(&limits, &long).unwrap_err().limit,
            "max_string_length"
        );
    }

    #[test]
    fn pages_multiply_the_cost_of_their_selection() {
        let limits = Limits::default();
        let nested = "{ agencies(first: 100) { nodes { reports(first: 100) { nodes { \
                      metrics { breakdowns { members { name } } } } } } } }";
        assert_eq!(
            check(&limits, nested).unwrap_err().limit,
            "max_query_complexity"
        );
        assert!(check(&limits, "{ agencies(first: 5) { nodes { name } } }").is_ok());
    }

    #[test]
    fn a_change_stream_is_read_once_per_request_and_its_pages_are_costed() {
        let limits = Limits::default();
        let once = "{ agency(id: \"1\") { datapointChanges(first: 10) { changes { value } } } }";
        assert!(check(&limits, once).is_ok());
        let in_list = "{ agencies(first: 2) { nodes { datapointChanges { changes { value } } } } }";
        assert_eq!(
            check(&limits, in_list).unwrap_err().limit,
            "change_pages_per_request"
        );
        let twice = "{ a: agency(id: \"1\") { datapointChanges { cursor } } \
                     b: agency(id: \"2\") { datapointChanges { cursor } } }";
        assert_eq!(
            check(&limits, twice).unwrap_err().limit,
            "change_pages_per_request"
        );
        // A page of 1,000 changes costs as 1,000 items, not as a list of unknown length.
        let limits = Limits {
            max_query_complexity: 2_000,
            ..Limits::default()
        };
        let page = |first: u32| {
            format!(
                "{{ agency(id: \"1\") {{ datapointChanges(first: {first}) {{ changes {{ \
                 agencyId metricKey value periodStart periodEnd }} }} }} }}"
            )
        };
        assert!(check(&limits, &page(10)).is_ok());
        assert_eq!(
            check(&limits, &page(1000)).unwrap_err().limit,
            "max_query_complexity"
        );
        // Without `first`, the page's own default (100), not the connections' (20).
        let limits = Limits {
            max_query_complexity: 300,
            ..Limits::default()
        };
        let unsized_page = "{ agency(id: \"1\") { datapointChanges { changes { \
                            agencyId metricKey value periodStart periodEnd } } } }";
        assert_eq!(
            check(&limits, unsized_page).unwrap_err().limit,
            "max_query_complexity"
        );
    }

    #[test]
    fn spreads_written_together_count_as_tokens_each() {
        let limits = Limits::default();
        let spreads = format!(
            "{{ a {} }} fragment F on Query {{ __typename }}",
            "...F".repeat(limits.max_query_tokens)
        );
        assert_eq!(
            check_text(&limits, &spreads).unwrap_err().limit,
            "max_query_tokens"
        );
        assert!(check_text(&limits, "{ a(x: -1.5e10, y: 3) { ...F } }").is_ok());
    }

    #[test]
    fn brackets_nest_no_deeper_than_the_limit() {
        let limits = Limits::default();
        let query = format!("{}{}", "{a".repeat(10_000), "}".repeat(10_000));
        assert_eq!(
            check_text(&limits, &query).unwrap_err().limit,
            "max_query_depth"
        );
    }

    #[test]
    fn tokens_are_counted_before_parsing() {
        let limits = Limits::default();
        let query = format!("{{ {} }}", "a ".repeat(limits.max_query_tokens));
        assert_eq!(
            check_text(&limits, &query).unwrap_err().limit,
            "max_query_tokens"
        );
        let strings = format!(
            "{{ a(s: \"{}\", b: \"\"\"x \\\"\"\" y\"\"\") }}",
            "word ".repeat(10_000)
        );
        assert!(
            check_text(&limits, &strings).is_ok(),
            "a string is one token"
        );
    }
}
