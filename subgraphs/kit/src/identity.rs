//! The caller identity inside resolvers. [`server`](crate::server) inserts the identity it
//! verified from the trust token into the request data; nothing else can.

use async_graphql::Context;
use portico_trust::Identity;

use crate::errors::{ErrorCode, gql_error};

static ANONYMOUS: Identity = Identity {
    user_id: None,
    scopes: Vec::new(),
};

/// The verified identity of this request (anonymous when the gateway vouched for none).
pub fn identity<'a>(ctx: &Context<'a>) -> &'a Identity {
    ctx.data_opt::<Identity>().unwrap_or(&ANONYMOUS)
}

/// The authenticated user's id, or an `UNAUTHENTICATED` error.
pub fn require_user(ctx: &Context<'_>) -> async_graphql::Result<String> {
    identity(ctx)
        .user_id
        .clone()
        .ok_or_else(|| gql_error(ErrorCode::Unauthenticated, "authentication required"))
}

/// Whether the identity holds `scope`.
pub fn has_scope(ctx: &Context<'_>, scope: &str) -> bool {
    identity(ctx).scopes.iter().any(|s| s == scope)
}
