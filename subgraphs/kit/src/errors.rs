//! GraphQL errors with a stable `extensions.code`.
//!
//! Resolvers return `async_graphql::Result`; build client errors with [`gql_error`] and turn
//! infrastructure failures (database, bus) into an opaque `INTERNAL` error with
//! [`internal`] or the [`OrInternal`] extension trait, which log the detail and never leak
//! it to the client. (Do not `?` a `DbErr` straight into `async_graphql::Error`: its blanket
//! `From<Display>` would put the SQL error text in the response.)

use std::fmt::Display;

use async_graphql::ErrorExtensions;

/// Stable error codes, rendered as `extensions.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    BadUserInput,
    NotFound,
    Unauthenticated,
    Forbidden,
    Internal,
}

impl ErrorCode {
    /// The SCREAMING_SNAKE code string.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadUserInput => "BAD_USER_INPUT",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::Internal => "INTERNAL",
        }
    }
}

impl Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A GraphQL error carrying `extensions.code`.
pub fn gql_error(code: ErrorCode, msg: impl Into<String>) -> async_graphql::Error {
    async_graphql::Error::new(msg.into()).extend_with(|_, e| e.set("code", code.as_str()))
}

/// Shorthand for a `BAD_USER_INPUT` error.
pub fn bad_input(msg: impl Into<String>) -> async_graphql::Error {
    gql_error(ErrorCode::BadUserInput, msg)
}

/// Shorthand for a `NOT_FOUND` error.
pub fn not_found(msg: impl Into<String>) -> async_graphql::Error {
    gql_error(ErrorCode::NotFound, msg)
}

/// Log `err` and return an opaque `INTERNAL` error (the detail is not sent to the client).
pub fn internal(err: impl Display) -> async_graphql::Error {
    tracing::error!(error = %err, "internal error while resolving");
    gql_error(ErrorCode::Internal, "internal error")
}

/// `result.or_internal()?` — map any infrastructure error (e.g. `DbErr`) to [`internal`].
pub trait OrInternal<T> {
    fn or_internal(self) -> async_graphql::Result<T>;
}

impl<T, E: Display> OrInternal<T> for Result<T, E> {
    fn or_internal(self) -> async_graphql::Result<T> {
        self.map_err(internal)
    }
}
