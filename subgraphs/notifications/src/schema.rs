//! The GraphQL schema of the notifications service: `Notification` (entity owner), the
//! `User` entity extended with `notifications` and `unreadNotificationCount` (visible to
//! that user only), and `markNotificationsRead`.

use async_graphql::dataloader::DataLoader;
use async_graphql::{ComplexObject, Context, Enum, ID, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use portico_kit::errors::{ErrorCode, bad_input, gql_error, internal};
use portico_kit::identity::{identity, require_user};
use portico_kit::pagination::{encode_cursor, try_forward_page, validate_first};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use crate::entity::notification;
use crate::loaders::NotificationLoader;
use portico_kit::input::{after_cursor, plausible_id};

/// Default and maximum page sizes.
pub const DEFAULT_PAGE: i32 = 10;
pub const MAX_PAGE: i32 = 100;
/// Most ids `markNotificationsRead` accepts at once.
pub const MAX_MARK_IDS: usize = 100;

/// What happened.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotificationKind {
    /// Someone liked your post.
    Like,
    /// Someone commented on your post.
    Comment,
    /// Someone followed you.
    Follow,
}

impl NotificationKind {
    /// The value stored in the `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::Like => "LIKE",
            NotificationKind::Comment => "COMMENT",
            NotificationKind::Follow => "FOLLOW",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "LIKE" => Some(NotificationKind::Like),
            "COMMENT" => Some(NotificationKind::Comment),
            "FOLLOW" => Some(NotificationKind::Follow),
            _ => None,
        }
    }
}

/// Something that happened to the recipient: a like, a comment or a new follower.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct Notification {
    pub id: ID,
    pub kind: NotificationKind,
    pub created_at: DateTime<Utc>,
    pub read: bool,
    #[graphql(skip)]
    pub actor_id: String,
    #[graphql(skip)]
    pub post_id: Option<String>,
}

impl Notification {
    /// A notification as the live hub carries it.
    pub fn from_live(n: &crate::live::LiveNotification) -> Result<Self> {
        let kind = NotificationKind::parse(&n.kind)
            .ok_or_else(|| internal(format!("unknown notification kind {:?}", n.kind)))?;
        Ok(Self {
            id: ID(n.id.clone()),
            kind,
            created_at: n.created_at,
            read: n.read,
            actor_id: n.actor_id.clone(),
            post_id: n.post_id.clone(),
        })
    }

    fn from_model(m: notification::Model) -> Result<Self> {
        let kind = NotificationKind::parse(&m.kind)
            .ok_or_else(|| internal(format!("unknown notification kind {:?}", m.kind)))?;
        Ok(Self {
            id: ID(m.id),
            kind,
            created_at: m.created_at,
            read: m.read,
            actor_id: m.actor_id,
            post_id: m.post_id,
        })
    }
}

#[ComplexObject]
impl Notification {
    /// Who did it.
    async fn actor(&self) -> Option<User> {
        Some(User {
            id: ID(self.actor_id.clone()),
        })
    }

    /// The post concerned (`null` for follows).
    async fn post(&self) -> Option<Post> {
        self.post_id.clone().map(|id| Post { id: ID(id) })
    }
}

// A post reference; the posts service resolves it (no description: the owner's is the
// one clients see).
#[derive(SimpleObject, Clone, Debug)]
#[graphql(unresolvable = "id")]
pub struct Post {
    pub id: ID,
}

/// A user, owned by the users service; this service adds their notifications.
pub struct User {
    pub id: ID,
}

/// Only the user themself may read their notifications.
fn require_self(ctx: &Context<'_>, user_id: &ID) -> Result<String> {
    let me = require_user(ctx)?;
    if me != user_id.as_str() {
        return Err(gql_error(
            ErrorCode::Forbidden,
            "notifications are visible to their recipient only",
        ));
    }
    Ok(me)
}

#[Object]
impl User {
    async fn id(&self) -> &ID {
        &self.id
    }

    /// The user's notifications, newest first (only for the authenticated user themself;
    /// anyone else gets `FORBIDDEN`). `unreadOnly` keeps unread ones only.
    async fn notifications(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        unread_only: Option<bool>,
    ) -> Result<Option<NotificationConnection>> {
        let first = validate_first(first, DEFAULT_PAGE, MAX_PAGE)?;
        let after = after_cursor(after.as_deref())?;
        let me = require_self(ctx, &self.id)?;
        let db = ctx.data::<DatabaseConnection>()?;
        let mut query =
            notification::Entity::find().filter(notification::Column::RecipientId.eq(me));
        if unread_only.unwrap_or(false) {
            query = query.filter(notification::Column::Read.eq(false));
        }
        if let Some((ts, id)) = &after {
            query = query.filter(
                Condition::any()
                    .add(notification::Column::CreatedAt.lt(*ts))
                    .add(
                        Condition::all()
                            .add(notification::Column::CreatedAt.eq(*ts))
                            .add(notification::Column::Id.lt(id.clone())),
                    ),
            );
        }
        let rows = query
            .order_by_desc(notification::Column::CreatedAt)
            .order_by_desc(notification::Column::Id)
            .limit(first + 1)
            .all(db)
            .await
            .map_err(internal)?;
        NotificationConnection::build(rows, first, after.is_some()).map(Some)
    }

    /// How many unread notifications the user has (only for the user themself).
    async fn unread_notification_count(&self, ctx: &Context<'_>) -> Result<i32> {
        let me = require_self(ctx, &self.id)?;
        let db = ctx.data::<DatabaseConnection>()?;
        let n = notification::Entity::find()
            .filter(notification::Column::RecipientId.eq(me))
            .filter(notification::Column::Read.eq(false))
            .count(db)
            .await
            .map_err(internal)?;
        Ok(i32::try_from(n).unwrap_or(i32::MAX))
    }
}

portico_kit::relay_connection!(
    /// A Relay connection of notifications, newest first.
    NotificationConnection,
    /// An edge of a `NotificationConnection`.
    NotificationEdge,
    Notification,
);

impl NotificationConnection {
    /// `rows` holds up to `first + 1` rows: the extra one only proves there is a next page.
    fn build(rows: Vec<notification::Model>, first: u64, has_previous: bool) -> Result<Self> {
        let (edges, page_info) = try_forward_page(rows, first, has_previous, |m| {
            Ok::<_, async_graphql::Error>((
                encode_cursor(m.created_at, &m.id),
                Notification::from_model(m)?,
            ))
        })?;
        Ok(Self::from_edges(edges, page_info))
    }
}

/// Root queries: entity resolvers only.
pub struct Query;

#[Object]
impl Query {
    /// A notification by id — resolved only for its recipient (`null` for anyone else).
    #[graphql(entity)]
    async fn find_notification_by_id(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<Option<Notification>> {
        let Some(me) = identity(ctx).user_id.clone() else {
            return Ok(None);
        };
        let loader = ctx.data::<DataLoader<NotificationLoader>>()?;
        match loader.load_one(id.to_string()).await? {
            Some(m) if m.recipient_id == me => Notification::from_model(m).map(Some),
            _ => Ok(None),
        }
    }

    #[graphql(entity)]
    async fn find_user_by_id(&self, id: ID) -> User {
        User { id }
    }
}

/// Root mutations.
pub struct Mutation;

#[Object]
impl Mutation {
    /// Mark the authenticated user's notifications `ids` as read (at most 100 ids; ids that
    /// are unknown, already read or someone else's are ignored). Returns how many changed.
    async fn mark_notifications_read(&self, ctx: &Context<'_>, ids: Vec<ID>) -> Result<i32> {
        let me = require_user(ctx)?;
        if ids.len() > MAX_MARK_IDS {
            return Err(bad_input(format!("at most {MAX_MARK_IDS} ids at once")));
        }
        if ids.is_empty() {
            return Ok(0);
        }
        let db = ctx.data::<DatabaseConnection>()?;
        let res = notification::Entity::update_many()
            .col_expr(notification::Column::Read, Expr::value(true))
            .filter(notification::Column::RecipientId.eq(me))
            .filter(notification::Column::Read.eq(false))
            .filter(
                notification::Column::Id
                    .is_in(ids.into_iter().map(|id| id.0).filter(|id| plausible_id(id))),
            )
            .exec(db)
            .await
            .map_err(internal)?;
        Ok(i32::try_from(res.rows_affected).unwrap_or(i32::MAX))
    }
}

/// Root subscriptions, over WebSocket (`graphql-transport-ws`) from the gateway.
pub struct Subscription;

#[async_graphql::Subscription]
impl Subscription {
    /// The authenticated user's new notifications (likes and comments on their posts, new
    /// followers), as they happen. A subscriber that falls more than 256 notifications
    /// behind misses the oldest of them.
    async fn notification_added(
        &self,
        ctx: &Context<'_>,
    ) -> Result<impl futures::Stream<Item = Notification> + use<>> {
        let me = require_user(ctx)?;
        let receiver = ctx.data::<crate::live::Hub>()?.subscribe();
        Ok(futures::stream::unfold(receiver, move |mut receiver| {
            let me = me.clone();
            async move {
                loop {
                    match receiver.recv().await {
                        Ok(n) if n.recipient_id == me => match Notification::from_live(&n) {
                            Ok(notification) => return Some((notification, receiver)),
                            Err(e) => tracing::warn!(error = ?e, "live notification skipped"),
                        },
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                            tracing::warn!(
                                missed,
                                "slow subscriber: oldest live notifications dropped"
                            );
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        }))
    }
}
