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
}
