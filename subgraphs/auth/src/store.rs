//! Auth's tables as sea-orm entities, and the refresh-token rules: tokens are 32 random
//! bytes (base64url) stored only as SHA-256; each use rotates the token within its family;
//! presenting an already rotated token is treated as theft and revokes the whole family.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use rand::RngCore;
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use sha2::{Digest, Sha256};

/// `accounts`.
pub mod account {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "accounts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub username: String,
        pub email: String,
        pub password_hash: String,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `refresh_tokens`.
pub mod refresh_token {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "refresh_tokens")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub account_id: String,
        pub family_id: String,
        pub token_hash: String,
        pub created_at: DateTimeUtc,
        pub expires_at: DateTimeUtc,
        pub rotated: bool,
        pub revoked: bool,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// SHA-256 (hex) of an opaque refresh token: what the database stores.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new opaque refresh token: 32 random bytes, base64url.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    B64.encode(bytes)
}

/// Store a new refresh token of `family_id` for `account_id`; returns the plaintext token.
pub async fn issue_refresh_token<C: ConnectionTrait>(
    conn: &C,
    account_id: &str,
    family_id: &str,
    expires_at: DateTime<Utc>,
) -> Result<String, DbErr> {
    let token = new_token();
    refresh_token::Entity::insert(refresh_token::ActiveModel {
        id: Set(portico_kit::new_id()),
        account_id: Set(account_id.to_string()),
        family_id: Set(family_id.to_string()),
        token_hash: Set(hash_token(&token)),
        created_at: Set(portico_kit::now()),
        expires_at: Set(expires_at),
        rotated: Set(false),
        revoked: Set(false),
    })
    .exec_without_returning(conn)
    .await?;
    Ok(token)
}

/// Revoke every token of a family; returns how many were newly revoked.
pub async fn revoke_family<C: ConnectionTrait>(conn: &C, family_id: &str) -> Result<u64, DbErr> {
    let res = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::Revoked, Expr::value(true))
        .filter(refresh_token::Column::FamilyId.eq(family_id))
        .filter(refresh_token::Column::Revoked.eq(false))
        .exec(conn)
        .await?;
    Ok(res.rows_affected)
}

/// Mark a token rotated if it is still live; `false` when someone else rotated or revoked
/// it first (a concurrent reuse).
pub async fn mark_rotated<C: ConnectionTrait>(conn: &C, id: &str) -> Result<bool, DbErr> {
    let res = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::Rotated, Expr::value(true))
        .filter(refresh_token::Column::Id.eq(id))
        .filter(refresh_token::Column::Rotated.eq(false))
        .filter(refresh_token::Column::Revoked.eq(false))
        .exec(conn)
        .await?;
    Ok(res.rows_affected == 1)
}
