//! Input checks shared by the resolvers and loaders: ids and cursors that could never
//! match a row are turned away before they reach SQL. (PostgreSQL refuses NUL bytes in
//! text parameters; without these checks such input would surface as `INTERNAL` errors
//! instead of `NOT_FOUND` / `BAD_USER_INPUT` / an empty result.)

use crate::errors::bad_input;
use crate::pagination::decode_cursor;
use chrono::{DateTime, Utc};

/// Longest id accepted anywhere (ids are UUIDv7 strings, 36 characters).
pub const MAX_ID_LEN: usize = 64;

/// Whether `id` could be the id of a row: non-empty, short, no control characters.
pub fn plausible_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && !id.chars().any(char::is_control)
}

/// Whether user-supplied text can be stored: no NUL bytes (PostgreSQL text cannot hold them).
pub fn storable_text(text: &str) -> bool {
    !text.contains('\0')
}

/// Decode an optional `after` cursor; `BAD_USER_INPUT` for anything not made by us.
pub fn after_cursor(after: Option<&str>) -> async_graphql::Result<Option<(DateTime<Utc>, String)>> {
    let Some(s) = after else {
        return Ok(None);
    };
    let (at, id) = decode_cursor(s)?;
    if !plausible_id(&id) {
        return Err(bad_input("invalid cursor"));
    }
    Ok(Some((at, id)))
}
