//! sea-orm entities of the likes service: likes (the `known_posts` projection is the kit's).

pub mod like {
    //! The `likes` table; primary key `(post_id, user_id)`.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "likes")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub post_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
