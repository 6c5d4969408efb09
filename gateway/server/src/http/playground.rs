//! The GraphiQL playground, served from assets embedded in the binary (vendored by
//! `assets/vendor.sh` from the npm registry; no CDN at run time). The headers editor is
//! open so users can paste `Authorization: Bearer …`.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Versions in asset URLs, so long-lived caches never serve stale files after an upgrade.
const GRAPHIQL_VERSION: &str = "3.8.3";
const REACT_VERSION: &str = "18.3.1";

const INIT_JS: &str = r#"(function () {
  var url = window.location.origin + window.location.pathname;
  var fetcher = GraphiQL.createFetcher({ url: url, headers: { "portico-csrf": "1" } });
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(React.createElement(GraphiQL, {
    fetcher: fetcher,
    isHeadersEditorEnabled: true,
    shouldPersistHeaders: false,
    defaultEditorToolsVisibility: "headers",
    defaultHeaders: "{}"
  }));
})();
"#;

/// The playground page.
pub fn page() -> Response {
    let html = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Portico playground</title>
<link rel="stylesheet" href="/graphql/assets/graphiql.min.css?v={GRAPHIQL_VERSION}">
<style>html, body, #graphiql {{ height: 100%; margin: 0; }}</style>
</head>
<body>
<div id="graphiql">Loading the playground…</div>
<script src="/graphql/assets/react.production.min.js?v={REACT_VERSION}"></script>
<script src="/graphql/assets/react-dom.production.min.js?v={REACT_VERSION}"></script>
<script src="/graphql/assets/graphiql.min.js?v={GRAPHIQL_VERSION}"></script>
<script src="/graphql/assets/playground.js?v={pkg}"></script>
</body>
</html>
"#,
        pkg = env!("CARGO_PKG_VERSION"),
    );
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        html,
    )
        .into_response()
}

fn asset_bytes(name: &str) -> Option<(&'static [u8], &'static str)> {
    Some(match name {
        "graphiql.min.js" => (
            include_bytes!("../../assets/graphiql.min.js").as_slice(),
            "text/javascript; charset=utf-8",
        ),
        "graphiql.min.css" => (
            include_bytes!("../../assets/graphiql.min.css").as_slice(),
            "text/css; charset=utf-8",
        ),
        "react.production.min.js" => (
            include_bytes!("../../assets/react.production.min.js").as_slice(),
            "text/javascript; charset=utf-8",
        ),
        "react-dom.production.min.js" => (
            include_bytes!("../../assets/react-dom.production.min.js").as_slice(),
            "text/javascript; charset=utf-8",
        ),
        "playground.js" => (INIT_JS.as_bytes(), "text/javascript; charset=utf-8"),
        _ => return None,
    })
}

/// `GET /graphql/assets/{name}`.
pub async fn asset(Path(name): Path<String>) -> Response {
    match asset_bytes(&name) {
        Some((bytes, content_type)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=31536000, immutable"),
                ),
            ],
            bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}
