//! SQL written out in the source, kept prepared like the statements of diesel's query builder.
//!
//! diesel never keeps raw SQL prepared (`sql_query`, `dsl::sql`): such text is often built at
//! run time, while its statement cache may be keyed by the query's type. Text that is a
//! `&'static str` is safe to keep, keyed by the text itself. With these wrappers PostgreSQL
//! parses a statement once per connection and can reuse its plan; with raw SQL it parses and
//! plans it again on every execution.

use std::marker::PhantomData;

use diesel::expression::{
    AppearsOnTable, Expression, SelectableExpression, TypedExpressionType, ValidGrouping,
};
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{SqlType, Untyped};
use diesel::{QueryResult, expression::is_aggregate};

/// An SQL expression of type `ST`, as written (for a select list, a filter or an ordering).
/// diesel cannot check the tables it names: the statement it goes into must hold them.
pub struct Fixed<ST> {
    sql: &'static str,
    sql_type: PhantomData<ST>,
}

/// The expression `sql`, of type `ST`.
pub fn fixed<ST>(sql: &'static str) -> Fixed<ST> {
    Fixed {
        sql,
        sql_type: PhantomData,
    }
}

impl<ST> Clone for Fixed<ST> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<ST> Copy for Fixed<ST> {}

impl<ST> std::fmt::Debug for Fixed<ST> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_tuple("Fixed").field(&self.sql).finish()
    }
}

impl<ST: SqlType + TypedExpressionType> Expression for Fixed<ST> {
    type SqlType = ST;
}

impl<ST> QueryFragment<Pg> for Fixed<ST> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(self.sql);
        Ok(())
    }
}

/// Keyed by its text in the statement cache, never by its type.
impl<ST> QueryId for Fixed<ST> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<ST, QS> SelectableExpression<QS> for Fixed<ST> where Self: Expression {}

impl<ST, QS> AppearsOnTable<QS> for Fixed<ST> where Self: Expression {}

impl<ST, GB> ValidGrouping<GB> for Fixed<ST> {
    type IsAggregate = is_aggregate::Never;
}

/// A statement whose rows are read by name (`QueryableByName`), with one parameter: `$1`, of
/// type `ST`, which the text may use more than once. It has no other parameter, and its first
/// `$1` is the parameter itself (not inside a literal or a comment).
pub struct FixedQuery<ST, T> {
    head: &'static str,
    tail: &'static str,
    bind: T,
    sql_type: PhantomData<ST>,
}

/// The statement `sql` with `bind` as its parameter `$1` (text without `$1` gets it at its end,
/// which PostgreSQL refuses: a mistake of the source that any test running it finds).
pub fn fixed_query<ST, T>(sql: &'static str, bind: T) -> FixedQuery<ST, T> {
    let (head, tail) = sql.split_once("$1").unwrap_or((sql, ""));
    FixedQuery {
        head,
        tail,
        bind,
        sql_type: PhantomData,
    }
}

impl<ST, T> QueryFragment<Pg> for FixedQuery<ST, T>
where
    ST: SqlType,
    T: ToSql<ST, Pg>,
    Pg: diesel::sql_types::HasSqlType<ST>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(self.head);
        // Written as `$1`: the first parameter of the statement.
        out.push_bind_param::<ST, T>(&self.bind)?;
        out.push_sql(self.tail);
        Ok(())
    }
}

impl<ST, T> QueryId for FixedQuery<ST, T> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<ST, T> Query for FixedQuery<ST, T> {
    type SqlType = Untyped;
}
