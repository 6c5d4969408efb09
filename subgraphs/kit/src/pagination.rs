//! Relay-style connection helpers: `first` validation and opaque keyset cursors on
//! `(created_at, id)`, newest first, stable under concurrent inserts.

use async_graphql::SimpleObject;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};

use crate::errors::bad_input;

/// `first` (default when absent) as a row count; `BAD_USER_INPUT` when `< 1` or `> max`.
pub fn validate_first(first: Option<i32>, default: i32, max: i32) -> async_graphql::Result<u64> {
    let n = first.unwrap_or(default);
    if n < 1 || n > max {
        return Err(bad_input(format!(
            "`first` must be between 1 and {max}, got {n}"
        )));
    }
    Ok(n as u64)
}

/// An opaque cursor for the row `(created_at, id)`.
pub fn encode_cursor(created_at: DateTime<Utc>, id: &str) -> String {
    B64.encode(format!("{}|{id}", created_at.timestamp_micros()))
}

/// Decode a cursor made by [`encode_cursor`]; `BAD_USER_INPUT` on anything else.
pub fn decode_cursor(s: &str) -> async_graphql::Result<(DateTime<Utc>, String)> {
    let invalid = || bad_input("invalid cursor");
    if s.len() > 512 {
        return Err(invalid());
    }
    let raw = B64.decode(s).map_err(|_| invalid())?;
    let raw = String::from_utf8(raw).map_err(|_| invalid())?;
    let (micros, id) = raw.split_once('|').ok_or_else(invalid)?;
    let micros: i64 = micros.parse().map_err(|_| invalid())?;
    let at = DateTime::<Utc>::from_timestamp_micros(micros).ok_or_else(invalid)?;
    if id.is_empty() {
        return Err(invalid());
    }
    Ok((at, id.to_string()))
}

/// Relay `PageInfo` (shareable: every subgraph with connections defines it).
#[derive(SimpleObject, Clone, Debug, Default, PartialEq, Eq)]
#[graphql(shareable)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
}

impl PageInfo {
    /// PageInfo of a forward page whose edge cursors are `cursors`.
    pub fn forward(cursors: &[String], has_next_page: bool, had_after: bool) -> Self {
        Self {
            has_next_page,
            has_previous_page: had_after,
            start_cursor: cursors.first().cloned(),
            end_cursor: cursors.last().cloned(),
        }
    }
}

/// Split up to `first + 1` rows (the extra one only proves there is a next page) into the
/// `(cursor, node)` edges of a forward page and its [`PageInfo`]; `edge` turns a row into
/// its cursor and node, and may fail.
pub fn try_forward_page<R, N, E>(
    mut rows: Vec<R>,
    first: u64,
    has_previous: bool,
    edge: impl FnMut(R) -> Result<(String, N), E>,
) -> Result<(Vec<(String, N)>, PageInfo), E> {
    let has_next = rows.len() as u64 > first;
    rows.truncate(usize::try_from(first).unwrap_or(usize::MAX));
    let edges = rows.into_iter().map(edge).collect::<Result<Vec<_>, E>>()?;
    let page_info = PageInfo {
        has_next_page: has_next,
        has_previous_page: has_previous,
        start_cursor: edges.first().map(|(c, _)| c.clone()),
        end_cursor: edges.last().map(|(c, _)| c.clone()),
    };
    Ok((edges, page_info))
}

/// [`try_forward_page`] with an infallible `edge`.
pub fn forward_page<R, N>(
    rows: Vec<R>,
    first: u64,
    has_previous: bool,
    mut edge: impl FnMut(R) -> (String, N),
) -> (Vec<(String, N)>, PageInfo) {
    match try_forward_page(rows, first, has_previous, |r| {
        Ok::<_, std::convert::Infallible>(edge(r))
    }) {
        Ok(page) => page,
        Err(never) => match never {},
    }
}

/// Define a Relay connection type `$conn { edges: [$edge!]!, nodes: [$node!]!, pageInfo }`
/// and its edge type `$edge { cursor, node }` (doc comments become the GraphQL
/// descriptions), with `$conn::from_edges` building it from `(cursor, node)` pairs and a
/// [`PageInfo`] — e.g. those of [`forward_page`].
#[macro_export]
macro_rules! relay_connection {
    (
        $(#[$conn_meta:meta])* $conn:ident,
        $(#[$edge_meta:meta])* $edge:ident,
        $node:ty $(,)?
    ) => {
        $(#[$edge_meta])*
        #[derive(::async_graphql::SimpleObject, Clone, Debug)]
        pub struct $edge {
            pub cursor: String,
            pub node: $node,
        }

        $(#[$conn_meta])*
        #[derive(::async_graphql::SimpleObject, Clone, Debug)]
        pub struct $conn {
            pub edges: Vec<$edge>,
            pub nodes: Vec<$node>,
            pub page_info: $crate::pagination::PageInfo,
        }

        impl $conn {
            /// The connection of the `(cursor, node)` pairs `edges`.
            pub fn from_edges(
                edges: Vec<(String, $node)>,
                page_info: $crate::pagination::PageInfo,
            ) -> Self {
                let edges: Vec<$edge> = edges
                    .into_iter()
                    .map(|(cursor, node)| $edge { cursor, node })
                    .collect();
                Self {
                    nodes: edges.iter().map(|e| e.node.clone()).collect(),
                    edges,
                    page_info,
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_bad_input() {
        let at = crate::now();
        let c = encode_cursor(at, "abc");
        assert_eq!(decode_cursor(&c).expect("valid"), (at, "abc".to_string()));
        for bad in ["", "!!!", "bm9waXBl", &B64.encode("x|y")] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn first_is_bounded() {
        assert_eq!(validate_first(None, 10, 100).expect("default"), 10);
        assert!(validate_first(Some(0), 10, 100).is_err());
        assert!(validate_first(Some(101), 10, 100).is_err());
        assert_eq!(validate_first(Some(100), 10, 100).expect("max"), 100);
    }

    #[test]
    fn forward_page_drops_the_probe_row() {
        let (edges, info) = forward_page(vec![1, 2, 3], 2, true, |n| (n.to_string(), n));
        assert_eq!(edges, vec![("1".to_string(), 1), ("2".to_string(), 2)]);
        assert_eq!(
            info,
            PageInfo::forward(&["1".into(), "2".into()], true, true)
        );
        let (edges, info) = forward_page(vec![1], 2, false, |n| (n.to_string(), n));
        assert_eq!(edges.len(), 1);
        assert!(!info.has_next_page && !info.has_previous_page);
    }
}
