//! Keyset pagination: which slice of an ordered list to read, and what was read.

/// One page of a keyset-paginated list.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The rows, in list order.
    pub rows: Vec<T>,
    /// Whether more rows follow the last one in the direction read.
    pub has_more: bool,
}

/// Which slice of a list to read: `limit` rows after `after` (or before `before` when
/// reading backwards), in list order.
#[derive(Debug, Clone, Copy)]
pub struct Slice<K> {
    /// Rows strictly after this position.
    pub after: Option<K>,
    /// Rows strictly before this position.
    pub before: Option<K>,
    /// How many rows.
    pub limit: i64,
    /// Read from the end (`last`/`before`) instead of the start.
    pub backwards: bool,
}
