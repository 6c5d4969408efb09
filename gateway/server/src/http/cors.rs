//! CORS, from `[cors]`: with no `allow_origins` there is no layer at all, so no
//! cross-origin page can read a response (or get a preflight approved) and only
//! same-origin pages such as the playground work. Otherwise tower-http's `CorsLayer`
//! answers preflights for the listed origins (or any, without credentials).

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::CorsConfig;

/// The layer for a validated config, or `None` when no origin is allowed.
pub(crate) fn layer(config: &CorsConfig) -> Option<CorsLayer> {
    if config.allow_origins.is_empty() {
        return None;
    }
    let origin = if config.allow_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            config
                .allow_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok()),
        )
    };
    let names = |list: &[String]| -> Vec<HeaderName> {
        list.iter()
            .filter_map(|h| HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()).ok())
            .collect()
    };
    Some(
        CorsLayer::new()
            .allow_origin(origin)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers(names(&config.allow_headers))
            .expose_headers(names(&config.expose_headers))
            .allow_credentials(config.allow_credentials)
            .max_age(Duration::from_secs(config.max_age_secs)),
    )
}
