//! sea-orm entities of the notifications service: notifications and the `post_authors`
//! projection.

pub mod notification {
    //! The `notifications` table; `source_key` (what caused it) is unique.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "notifications")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub recipient_id: String,
        /// `LIKE`, `COMMENT` or `FOLLOW`.
        pub kind: String,
        pub actor_id: String,
        pub post_id: Option<String>,
        pub source_key: String,
        pub created_at: DateTimeUtc,
        pub read: bool,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod post_author {
    //! The `post_authors` projection: who wrote each existing post.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "post_authors")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub post_id: String,
        pub author_id: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
