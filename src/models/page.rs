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

impl<T> Page<T> {
    /// The page of `rows` read with `slice`, which asked for one row more than the page
    /// holds to learn whether more follow; backwards reads are put back in list order.
    pub fn from_overfetched<K>(mut rows: Vec<T>, slice: &Slice<K>) -> Self {
        let has_more = rows.len() as i64 > slice.limit;
        rows.truncate(usize::try_from(slice.limit).unwrap_or(0));
        if slice.backwards {
            rows.reverse();
        }
        Page { rows, has_more }
    }
}
