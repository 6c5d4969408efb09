//! The benchmark's four subgraphs, the classic federation shape every gateway benchmark
//! uses: `accounts` (`User @key(id)`), `products` (`Product @key(upc)`), `inventory`
//! (`shippingEstimate @requires(fields: "price weight")` over `@external` fields) and
//! `reviews` (`Review`, `User.reviews`, `Product.reviews`, `author @provides(fields:
//! "username")`). Data is fixed and in memory ([`Data`]), resolvers do no I/O and never
//! sleep, so the numbers measure the gateway, not the subgraphs.
//!
//! The same [`Data`] also builds the expected response of the heavy query
//! ([`expected_heavy`]), independently of any gateway: the load generator checks every
//! response against it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_graphql::{EmptyMutation, EmptySubscription, ID, Object, Schema};
use async_graphql_axum::GraphQL;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post_service};
use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::{Value, json};

/// The heavy query of the gateways benchmark: users → reviews → product → reviews →
/// author → reviews → product, and top products → reviews → author → reviews → product.
pub const HEAVY_QUERY: &str = r#"fragment User on User { id username name }
fragment Review on Review { id body }
fragment Product on Product { inStock name price shippingEstimate upc weight }
query TestQuery {
  users {
    ...User
    reviews {
      ...Review
      product {
        ...Product
        reviews {
          ...Review
          author { ...User reviews { ...Review product { ...Product } } }
        }
      }
    }
  }
  topProducts {
    ...Product
    reviews {
      ...Review
      author { ...User reviews { ...Review product { ...Product } } }
    }
  }
}"#;

/// A small query answered by one subgraph: the gateway's per-request floor.
pub const SMALL_QUERY: &str = "{ users { id } }";

/// The subgraphs in composition order.
pub const NAMES: [&str; 4] = ["accounts", "inventory", "products", "reviews"];

const USERS: usize = 8;
const PRODUCTS: usize = 9;
const REVIEWS_PER_USER: usize = 2;
const TOP_PRODUCTS_DEFAULT: i32 = 5;

const BODIES: [&str; 4] = [
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat. Duis aute irure dolor in reprehenderit in voluptate velit esse cillum dolore eu fugiat nulla pariatur. Excepteur sint occaecat cupidatat non proident, sunt in culpa qui officia deserunt mollit anim id est laborum.",
    "Sed ut perspiciatis unde omnis iste natus error sit voluptatem accusantium doloremque laudantium, totam rem aperiam, eaque ipsa quae ab illo inventore veritatis et quasi architecto beatae vitae dicta sunt explicabo. Nemo enim ipsam voluptatem quia voluptas sit aspernatur aut odit aut fugit, sed quia consequuntur magni dolores eos qui ratione voluptatem sequi nesciunt.",
    "Neque porro quisquam est, qui dolorem ipsum quia dolor sit amet, consectetur, adipisci velit, sed quia non numquam eius modi tempora incidunt ut labore et dolore magnam aliquam quaerat voluptatem. Ut enim ad minima veniam, quis nostrum exercitationem ullam corporis suscipit laboriosam.",
    "At vero eos et accusamus et iusto odio dignissimos ducimus qui blanditiis praesentium voluptatum deleniti atque corrupti quos dolores et quas molestias excepturi sint occaecati cupiditate non provident, similique sunt in culpa qui officia deserunt mollitia animi, id est laborum et dolorum fuga.",
];

#[derive(Debug, Clone)]
struct UserRow {
    id: String,
    name: String,
    username: String,
    birthday: i32,
}

#[derive(Debug, Clone)]
struct ProductRow {
    upc: String,
    name: String,
    price: i32,
    weight: i32,
    in_stock: bool,
}

#[derive(Debug, Clone)]
struct ReviewRow {
    id: String,
    body: &'static str,
    author: usize,
    product: usize,
}

/// The fixed data set every subgraph serves its part of.
#[derive(Debug)]
pub struct Data {
    users: Vec<UserRow>,
    products: Vec<ProductRow>,
    reviews: Vec<ReviewRow>,
    user_index: HashMap<String, usize>,
    product_index: HashMap<String, usize>,
    review_index: HashMap<String, usize>,
    reviews_by_author: Vec<Vec<usize>>,
    reviews_by_product: Vec<Vec<usize>>,
}

impl Data {
    /// The benchmark's data: 8 users with 2 reviews each, 9 products.
    pub fn new() -> Self {
        const NAMES: [(&str, &str); USERS] = [
            ("urigo", "Uri Goldshtein"),
            ("dotan", "Dotan Simha"),
            ("kamil", "Kamil Kisiela"),
            ("ardatan", "Arda Tanrikulu"),
            ("enisdenjo", "Denis Badurina"),
            ("n1ru4l", "Laurin Quast"),
            ("saihaj", "Saihajpreet Singh"),
            ("jdolle", "Jeff Dolle"),
        ];
        let users: Vec<UserRow> = NAMES
            .iter()
            .enumerate()
            .map(|(i, (username, name))| UserRow {
                id: (i + 1).to_string(),
                name: (*name).to_string(),
                username: (*username).to_string(),
                birthday: 1_000_000 + i as i32 * 86_400,
            })
            .collect();
        const PRODUCT_NAMES: [&str; PRODUCTS] = [
            "Table", "Couch", "Chair", "Lamp", "Desk", "Shelf", "Bed", "Rug", "Stool",
        ];
        let products: Vec<ProductRow> = PRODUCT_NAMES
            .iter()
            .enumerate()
            .map(|(i, name)| ProductRow {
                upc: (i + 1).to_string(),
                name: (*name).to_string(),
                price: 899 + i as i32 * 137,
                weight: 100 + i as i32 * 25,
                in_stock: i % 3 != 2,
            })
            .collect();
        let mut reviews = Vec::new();
        for (u, _) in users.iter().enumerate() {
            for k in 0..REVIEWS_PER_USER {
                let n = reviews.len();
                reviews.push(ReviewRow {
                    id: (n + 1).to_string(),
                    body: BODIES[n % BODIES.len()],
                    author: u,
                    // Reviews cluster on the first products, so the top products have
                    // several reviews each and the rest few or none.
                    product: (u + k * 2) % (PRODUCTS - 3),
                });
            }
        }
        let mut reviews_by_author = vec![Vec::new(); users.len()];
        let mut reviews_by_product = vec![Vec::new(); products.len()];
        for (i, r) in reviews.iter().enumerate() {
            reviews_by_author[r.author].push(i);
            reviews_by_product[r.product].push(i);
        }
        Data {
            user_index: users
                .iter()
                .enumerate()
                .map(|(i, u)| (u.id.clone(), i))
                .collect(),
            product_index: products
                .iter()
                .enumerate()
                .map(|(i, p)| (p.upc.clone(), i))
                .collect(),
            review_index: reviews
                .iter()
                .enumerate()
                .map(|(i, r)| (r.id.clone(), i))
                .collect(),
            users,
            products,
            reviews,
            reviews_by_author,
            reviews_by_product,
        }
    }

    /// The expected `{"data": ...}` of [`HEAVY_QUERY`], built from the data alone.
    pub fn expected_heavy(&self) -> Value {
        let user = |u: usize| {
            let r = &self.users[u];
            serde_json::Map::from_iter([
                ("id".to_string(), json!(r.id)),
                ("username".to_string(), json!(r.username)),
                ("name".to_string(), json!(r.name)),
            ])
        };
        let review = |i: usize| {
            let r = &self.reviews[i];
            serde_json::Map::from_iter([
                ("id".to_string(), json!(r.id)),
                ("body".to_string(), json!(r.body)),
            ])
        };
        let product = |p: usize| {
            let r = &self.products[p];
            serde_json::Map::from_iter([
                ("inStock".to_string(), json!(r.in_stock)),
                ("name".to_string(), json!(r.name)),
                ("price".to_string(), json!(r.price)),
                (
                    "shippingEstimate".to_string(),
                    json!(shipping_estimate(r.price, r.weight)),
                ),
                ("upc".to_string(), json!(r.upc)),
                ("weight".to_string(), json!(r.weight)),
            ])
        };
        // author { ...User reviews { ...Review product { ...Product } } }
        let author = |u: usize| {
            let mut m = user(u);
            let list: Vec<Value> = self.reviews_by_author[u]
                .iter()
                .map(|&i| {
                    let mut rv = review(i);
                    rv.insert(
                        "product".into(),
                        Value::Object(product(self.reviews[i].product)),
                    );
                    Value::Object(rv)
                })
                .collect();
            m.insert("reviews".into(), Value::Array(list));
            Value::Object(m)
        };
        // reviews { ...Review author { ... } } of a product
        let product_reviews = |p: usize| -> Value {
            Value::Array(
                self.reviews_by_product[p]
                    .iter()
                    .map(|&i| {
                        let mut rv = review(i);
                        rv.insert("author".into(), author(self.reviews[i].author));
                        Value::Object(rv)
                    })
                    .collect(),
            )
        };
        let users: Vec<Value> = (0..self.users.len())
            .map(|u| {
                let mut m = user(u);
                let list: Vec<Value> = self.reviews_by_author[u]
                    .iter()
                    .map(|&i| {
                        let mut rv = review(i);
                        let p = self.reviews[i].product;
                        let mut pm = product(p);
                        pm.insert("reviews".into(), product_reviews(p));
                        rv.insert("product".into(), Value::Object(pm));
                        Value::Object(rv)
                    })
                    .collect();
                m.insert("reviews".into(), Value::Array(list));
                Value::Object(m)
            })
            .collect();
        let top: Vec<Value> = (0..TOP_PRODUCTS_DEFAULT as usize)
            .map(|p| {
                let mut pm = product(p);
                pm.insert("reviews".into(), product_reviews(p));
                Value::Object(pm)
            })
            .collect();
        json!({ "data": { "users": users, "topProducts": top } })
    }

    /// The expected `{"data": ...}` of [`SMALL_QUERY`].
    pub fn expected_small(&self) -> Value {
        let users: Vec<Value> = self.users.iter().map(|u| json!({ "id": u.id })).collect();
        json!({ "data": { "users": users } })
    }
}

impl Default for Data {
    fn default() -> Self {
        Self::new()
    }
}

fn shipping_estimate(price: i32, weight: i32) -> i32 {
    if price > 1000 { 0 } else { weight / 2 }
}

// ---------------------------------------------------------------------------------------
// accounts

mod accounts {
    use super::*;

    pub struct User(pub Arc<Data>, pub usize);

    #[Object]
    impl User {
        async fn id(&self) -> ID {
            ID(self.0.users[self.1].id.clone())
        }
        async fn name(&self) -> Option<&str> {
            Some(&self.0.users[self.1].name)
        }
        async fn username(&self) -> Option<&str> {
            Some(&self.0.users[self.1].username)
        }
        async fn birthday(&self) -> Option<i32> {
            Some(self.0.users[self.1].birthday)
        }
    }

    pub struct Query(pub Arc<Data>);

    #[Object]
    impl Query {
        async fn me(&self) -> Option<User> {
            Some(User(self.0.clone(), 0))
        }
        async fn user(&self, id: ID) -> Option<User> {
            self.0
                .user_index
                .get(id.as_str())
                .map(|&i| User(self.0.clone(), i))
        }
        async fn users(&self) -> Option<Vec<Option<User>>> {
            Some(
                (0..self.0.users.len())
                    .map(|i| Some(User(self.0.clone(), i)))
                    .collect(),
            )
        }
        #[graphql(entity)]
        async fn find_user_by_id(&self, id: ID) -> Option<User> {
            self.0
                .user_index
                .get(id.as_str())
                .map(|&i| User(self.0.clone(), i))
        }
    }
}

// ---------------------------------------------------------------------------------------
// products

mod products {
    use super::*;

    pub struct Product(pub Arc<Data>, pub usize);

    #[Object]
    impl Product {
        async fn upc(&self) -> &str {
            &self.0.products[self.1].upc
        }
        async fn name(&self) -> Option<&str> {
            Some(&self.0.products[self.1].name)
        }
        async fn price(&self) -> Option<i32> {
            Some(self.0.products[self.1].price)
        }
        async fn weight(&self) -> Option<i32> {
            Some(self.0.products[self.1].weight)
        }
    }

    pub struct Query(pub Arc<Data>);

    #[Object]
    impl Query {
        async fn top_products(
            &self,
            #[graphql(default = 5)] first: i32,
        ) -> Option<Vec<Option<Product>>> {
            let n = usize::try_from(first)
                .unwrap_or(0)
                .min(self.0.products.len());
            Some((0..n).map(|i| Some(Product(self.0.clone(), i))).collect())
        }
        #[graphql(entity)]
        async fn find_product_by_upc(&self, upc: String) -> Option<Product> {
            self.0
                .product_index
                .get(&upc)
                .map(|&i| Product(self.0.clone(), i))
        }
    }
}

// ---------------------------------------------------------------------------------------
// inventory

mod inventory {
    use super::*;

    pub struct Product {
        data: Arc<Data>,
        index: Option<usize>,
        upc: String,
        price: Option<i32>,
        weight: Option<i32>,
    }

    #[Object]
    impl Product {
        async fn upc(&self) -> &str {
            &self.upc
        }
        #[graphql(external)]
        async fn weight(&self) -> Option<i32> {
            self.weight
        }
        #[graphql(external)]
        async fn price(&self) -> Option<i32> {
            self.price
        }
        async fn in_stock(&self) -> Option<bool> {
            self.index.map(|i| self.data.products[i].in_stock)
        }
        #[graphql(requires = "price weight")]
        async fn shipping_estimate(&self) -> Option<i32> {
            Some(shipping_estimate(self.price?, self.weight?))
        }
    }

    pub struct Query(pub Arc<Data>);

    #[Object]
    impl Query {
        #[graphql(entity)]
        async fn find_product_by_upc(
            &self,
            #[graphql(key)] upc: String,
            price: Option<i32>,
            weight: Option<i32>,
        ) -> Product {
            Product {
                data: self.0.clone(),
                index: self.0.product_index.get(&upc).copied(),
                upc,
                price,
                weight,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// reviews

mod reviews {
    use super::*;

    pub struct Review(pub Arc<Data>, pub usize);

    #[Object]
    impl Review {
        async fn id(&self) -> ID {
            ID(self.0.reviews[self.1].id.clone())
        }
        async fn body(&self) -> Option<&str> {
            Some(self.0.reviews[self.1].body)
        }
        async fn product(&self) -> Option<Product> {
            Some(Product(self.0.clone(), self.0.reviews[self.1].product))
        }
        #[graphql(provides = "username")]
        async fn author(&self) -> Option<User> {
            Some(User(self.0.clone(), self.0.reviews[self.1].author))
        }
    }

    pub struct User(pub Arc<Data>, pub usize);

    #[Object]
    impl User {
        async fn id(&self) -> ID {
            ID(self.0.users[self.1].id.clone())
        }
        #[graphql(external)]
        async fn username(&self) -> Option<&str> {
            Some(&self.0.users[self.1].username)
        }
        async fn reviews(&self) -> Option<Vec<Option<Review>>> {
            Some(
                self.0.reviews_by_author[self.1]
                    .iter()
                    .map(|&i| Some(Review(self.0.clone(), i)))
                    .collect(),
            )
        }
    }

    pub struct Product(pub Arc<Data>, pub usize);

    #[Object]
    impl Product {
        async fn upc(&self) -> &str {
            &self.0.products[self.1].upc
        }
        async fn reviews(&self) -> Option<Vec<Option<Review>>> {
            Some(
                self.0.reviews_by_product[self.1]
                    .iter()
                    .map(|&i| Some(Review(self.0.clone(), i)))
                    .collect(),
            )
        }
    }

    pub struct Query(pub Arc<Data>);

    #[Object]
    impl Query {
        #[graphql(entity)]
        async fn find_review_by_id(&self, id: ID) -> Option<Review> {
            self.0
                .review_index
                .get(id.as_str())
                .map(|&i| Review(self.0.clone(), i))
        }
        #[graphql(entity)]
        async fn find_user_by_id(&self, id: ID) -> Option<User> {
            self.0
                .user_index
                .get(id.as_str())
                .map(|&i| User(self.0.clone(), i))
        }
        #[graphql(entity)]
        async fn find_product_by_upc(&self, upc: String) -> Option<Product> {
            self.0
                .product_index
                .get(&upc)
                .map(|&i| Product(self.0.clone(), i))
        }
    }
}

// ---------------------------------------------------------------------------------------
// serving

/// One subgraph's schema, ready to serve.
enum AnySchema {
    Accounts(Schema<accounts::Query, EmptyMutation, EmptySubscription>),
    Inventory(Schema<inventory::Query, EmptyMutation, EmptySubscription>),
    Products(Schema<products::Query, EmptyMutation, EmptySubscription>),
    Reviews(Schema<reviews::Query, EmptyMutation, EmptySubscription>),
}

fn schema(name: &str, data: Arc<Data>) -> Option<AnySchema> {
    Some(match name {
        "accounts" => AnySchema::Accounts(
            Schema::build(accounts::Query(data), EmptyMutation, EmptySubscription)
                .enable_federation()
                .finish(),
        ),
        "inventory" => AnySchema::Inventory(
            Schema::build(inventory::Query(data), EmptyMutation, EmptySubscription)
                .enable_federation()
                .finish(),
        ),
        "products" => AnySchema::Products(
            Schema::build(products::Query(data), EmptyMutation, EmptySubscription)
                .enable_federation()
                .finish(),
        ),
        "reviews" => AnySchema::Reviews(
            Schema::build(reviews::Query(data), EmptyMutation, EmptySubscription)
                .enable_federation()
                .finish(),
        ),
        _ => return None,
    })
}

/// The Federation v2 SDL of subgraph `name` (as `_service { sdl }` serves it).
pub fn sdl(name: &str) -> Option<String> {
    let opts = async_graphql::SDLExportOptions::new().federation();
    Some(match schema(name, Arc::new(Data::new()))? {
        AnySchema::Accounts(s) => s.sdl_with_options(opts),
        AnySchema::Inventory(s) => s.sdl_with_options(opts),
        AnySchema::Products(s) => s.sdl_with_options(opts),
        AnySchema::Reviews(s) => s.sdl_with_options(opts),
    })
}

/// One request a subgraph answered while recording was on.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Recorded {
    pub subgraph: String,
    pub request: String,
    pub response: String,
}

/// Request counting and recording shared by the four servers of one process.
#[derive(Default)]
pub struct Tap {
    requests: AtomicU64,
    recording: Mutex<Option<Vec<Recorded>>>,
}

impl Tap {
    /// GraphQL requests answered so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
struct Served {
    name: &'static str,
    tap: Arc<Tap>,
}

/// Counts every GraphQL request; while recording, keeps each request and response body.
async fn count_and_record(State(s): State<Served>, req: Request, next: Next) -> Response {
    s.tap.requests.fetch_add(1, Ordering::Relaxed);
    if s.tap.recording.lock().is_none() {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let Ok(request) = axum::body::to_bytes(body, 16 << 20).await else {
        return (axum::http::StatusCode::BAD_REQUEST, "body").into_response();
    };
    let response = next
        .run(Request::from_parts(parts, Body::from(request.clone())))
        .await;
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 << 20).await else {
        return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "body").into_response();
    };
    if let Some(list) = s.tap.recording.lock().as_mut() {
        list.push(Recorded {
            subgraph: s.name.to_string(),
            request: String::from_utf8_lossy(&request).into_owned(),
            response: String::from_utf8_lossy(&bytes).into_owned(),
        });
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// Control routes on every server: `GET /bench/requests` (requests answered by the whole
/// process), `POST /bench/record` (start recording, forgetting earlier records),
/// `GET /bench/recorded` (stop and return the records in arrival order).
async fn requests(State(s): State<Served>) -> String {
    s.tap.requests().to_string()
}

async fn record(State(s): State<Served>) -> &'static str {
    *s.tap.recording.lock() = Some(Vec::new());
    "recording"
}

async fn recorded(State(s): State<Served>) -> axum::Json<Vec<Recorded>> {
    axum::Json(s.tap.recording.lock().take().unwrap_or_default())
}

/// The router of subgraph `name`: `POST /graphql`, `GET /health`, the `/bench/*` routes.
pub fn app(name: &'static str, data: Arc<Data>, tap: Arc<Tap>) -> Option<Router> {
    let served = Served { name, tap };
    let graphql = match schema(name, data)? {
        AnySchema::Accounts(s) => post_service(GraphQL::new(s)),
        AnySchema::Inventory(s) => post_service(GraphQL::new(s)),
        AnySchema::Products(s) => post_service(GraphQL::new(s)),
        AnySchema::Reviews(s) => post_service(GraphQL::new(s)),
    };
    Some(
        Router::new()
            .route("/graphql", graphql)
            .route_layer(middleware::from_fn_with_state(
                served.clone(),
                count_and_record,
            ))
            .route("/health", get(|| async { "OK" }))
            .route("/bench/requests", get(requests))
            .route("/bench/record", axum::routing::post(record))
            .route("/bench/recorded", get(recorded))
            .with_state(served),
    )
}

/// Serves the four subgraphs on `ports` (in [`NAMES`] order) on 127.0.0.1 until the
/// process ends.
pub async fn serve(ports: [u16; 4]) -> anyhow::Result<()> {
    let data = Arc::new(Data::new());
    let tap = Arc::new(Tap::default());
    let mut servers = Vec::new();
    for (name, port) in NAMES.into_iter().zip(ports) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let app = app(name, data.clone(), tap.clone())
            .ok_or_else(|| anyhow::anyhow!("no subgraph {name}"))?;
        println!("{name} subgraph on http://127.0.0.1:{port}/graphql");
        servers.push(tokio::spawn(
            async move { axum::serve(listener, app).await },
        ));
    }
    for s in servers {
        s.await??;
    }
    Ok(())
}

/// Bytes of a canonical JSON value (key order kept).
pub fn canonical(v: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_subgraphs_compose_with_requires_and_provides() {
        let inputs: Vec<_> = NAMES
            .iter()
            .map(|n| portico_federation::compose::SubgraphInput {
                name: (*n).to_string(),
                url: format!("http://127.0.0.1:1/{n}"),
                sdl: sdl(n).expect("known subgraph"),
            })
            .collect();
        let composed =
            portico_federation::compose::compose(&inputs).expect("the benchmark composes");
        assert!(
            composed
                .supergraph_sdl
                .contains("requires: \"price weight\"")
        );
        assert!(composed.supergraph_sdl.contains("provides: \"username\""));
    }

    #[test]
    fn the_expected_heavy_response_has_the_benchmark_size() {
        let bytes = canonical(&Data::new().expected_heavy());
        // The public benchmark's response is 87.6 KB; ours is of the same order.
        println!("heavy response: {} bytes", bytes.len());
        assert!(bytes.len() > 60_000, "{} bytes", bytes.len());
        assert!(bytes.len() < 200_000, "{} bytes", bytes.len());
    }
}
