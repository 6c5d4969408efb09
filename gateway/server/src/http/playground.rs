//! The GraphiQL playground, served from assets embedded in the binary (vendored by
//! `assets/vendor.sh` from the npm registry; no CDN at run time). The headers editor is
//! open so users can paste `Authorization: Bearer …`; `assets/playground.js` adds the
//! Explain panel (plan and cost of the operation just run, from `extensions.explain`)
//! and, when `[playground_sign_in]` is set, a sign-in form.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::config::GatewayConfig;

/// Versions in asset URLs, so long-lived caches never serve stale files after an upgrade.
const GRAPHIQL_VERSION: &str = "3.8.3";
const REACT_VERSION: &str = "18.3.1";

/// Our own script (GraphiQL set up with the Explain and Sign in plugins).
const PLAYGROUND_JS: &str = include_str!("../../assets/playground.js");

/// FNV-1a of the script, its cache-busting version: the file changes without the crate
/// version changing, and browsers keep assets a year.
const PLAYGROUND_JS_VERSION: u64 = {
    let bytes = PLAYGROUND_JS.as_bytes();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
};

/// Styles of the two plugins' panels (GraphiQL's variables keep them in its theme).
const PLAYGROUND_CSS: &str = "html, body, #graphiql { height: 100%; margin: 0; }
.portico-explain, .portico-sign-in { font-size: 0.9em; }
.portico-explain h3 { margin: 1em 0 0.4em; font-size: 1em; }
.portico-note { color: hsla(var(--color-neutral), var(--alpha-secondary)); font-size: 0.9em; }
.portico-kind { font-weight: 600; }
.portico-group { margin: 0.2em 0; }
.portico-children { border-left: 1px solid hsla(var(--color-neutral), var(--alpha-background-heavy)); margin-left: 0.4em; padding-left: 0.7em; }
.portico-fetch { margin: 0.3em 0; padding: 0.3em 0.5em; border-radius: 4px; background: hsla(var(--color-neutral), var(--alpha-background-light)); }
.portico-subgraph { color: hsl(var(--color-primary)); font-weight: 600; }
.portico-operation { white-space: pre-wrap; word-break: break-word; margin: 0.3em 0 0; font-size: 0.85em; }
.portico-cost table { border-collapse: collapse; margin: 0.4em 0; }
.portico-cost th, .portico-cost td { text-align: left; padding: 0.1em 0.6em 0.1em 0.3em; }
.portico-cost .portico-num { text-align: right; font-variant-numeric: tabular-nums; }
.portico-sign-in form { display: flex; flex-direction: column; gap: 0.6em; margin-top: 0.6em; }
.portico-sign-in label { display: flex; flex-direction: column; gap: 0.2em; }
.portico-sign-in input { font: inherit; padding: 0.3em 0.4em; border-radius: 4px; border: 1px solid hsla(var(--color-neutral), var(--alpha-background-heavy)); background: transparent; color: inherit; }
.portico-buttons { display: flex; gap: 0.5em; }
";

/// What the script needs to know of the config: whether explanations are on, and the
/// sign-in mutation. Embedded as JSON in the page (`</` escaped, so no text of it can
/// close the script element).
fn page_config(config: &GatewayConfig) -> String {
    let value = serde_json::json!({
        "explain": config.explain_enabled(),
        "signIn": config.playground_sign_in.as_ref().map(|s| serde_json::json!({
            "mutation": s.mutation,
            "tokenPath": s.token_path,
        })),
    });
    value.to_string().replace("</", "<\\/")
}

/// The playground page.
pub fn page(config: &GatewayConfig) -> Response {
    let html = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Portico playground</title>
<link rel="stylesheet" href="/graphql/assets/graphiql.min.css?v={GRAPHIQL_VERSION}">
<style>{PLAYGROUND_CSS}</style>
</head>
<body>
<div id="graphiql">Loading the playground…</div>
<script type="application/json" id="portico-playground-config">{config_json}</script>
<script src="/graphql/assets/react.production.min.js?v={REACT_VERSION}"></script>
<script src="/graphql/assets/react-dom.production.min.js?v={REACT_VERSION}"></script>
<script src="/graphql/assets/graphiql.min.js?v={GRAPHIQL_VERSION}"></script>
<script src="/graphql/assets/playground.js?v={PLAYGROUND_JS_VERSION:016x}"></script>
</body>
</html>
"#,
        config_json = page_config(config),
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
        "playground.js" => (PLAYGROUND_JS.as_bytes(), "text/javascript; charset=utf-8"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PlaygroundSignInConfig;

    #[test]
    fn the_page_config_cannot_close_its_script_element() {
        let config = GatewayConfig {
            playground_sign_in: Some(PlaygroundSignInConfig {
                mutation: "mutation($username: String!, $password: String!) { login(u: $username, p: $password) { t } } # </script><script>alert(1)</script>".into(),
                token_path: "login.t".into(),
            }),
            ..GatewayConfig::default()
        };
        let json = page_config(&config);
        assert!(!json.contains("</"), "{json}");
        let back: serde_json::Value = serde_json::from_str(&json).expect("still JSON");
        assert_eq!(back["explain"], false);
        assert!(
            back["signIn"]["mutation"]
                .as_str()
                .is_some_and(|m| m.ends_with("</script>")),
            "{back}"
        );
        assert_eq!(back["signIn"]["tokenPath"], "login.t");
    }
}
