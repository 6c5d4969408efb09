//! No secret in any log line: the whole platform runs in this process with every Portico
//! crate logging at `debug`, a client registers, logs in, refreshes, queries with its token
//! and sends forged tokens; the captured log output must contain none of the passwords,
//! access tokens, refresh tokens or trust tokens that crossed the wire.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use portico::seed::Client;
use serde_json::json;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        let writer = capture.clone();
        let filter = tracing_subscriber::EnvFilter::new(
            "info,portico=debug,portico_gateway=debug,portico_kit=debug,portico_auth=debug,\
             portico_users=debug,portico_posts=debug,portico_comments=debug,portico_likes=debug,\
             portico_notifications=debug,tower_http=debug",
        );
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        // Another test binary module may not install a subscriber; this one is global.
        let _ = tracing::subscriber::set_global_default(subscriber);
        capture
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_or_token_appears_in_any_log_line() {
    let logs = capture();
    let p = crate::platform::start().await;
    let client = Client::new(&p.gateway_url);
    let password = "Sup3r-secret-passw0rd";
    let reg = client
        .run(
            None,
            "mutation($p: String!) { register(username: \"logcheck\", email: \"logcheck@example.com\", password: $p) { accessToken refreshToken } }",
            json!({ "p": password }),
        )
        .await
        .expect("register");
    let access = reg["register"]["accessToken"]
        .as_str()
        .expect("access")
        .to_string();
    let refresh = reg["register"]["refreshToken"]
        .as_str()
        .expect("refresh")
        .to_string();
    let refreshed = client
        .run(
            None,
            "mutation($r: String!) { refresh(refreshToken: $r) { accessToken refreshToken } }",
            json!({ "r": refresh }),
        )
        .await
        .expect("refresh");
    let access2 = refreshed["refresh"]["accessToken"]
        .as_str()
        .expect("access")
        .to_string();
    let (alice_token, _) = crate::platform::login(&client, "alice").await;
    client
        .run(
            Some(&alice_token),
            "{ me { username posts(first: 3) { nodes { likeCount likedByMe } } } }",
            json!({}),
        )
        .await
        .expect("query with a token");
    // A wrong password and forged tokens are refused — and must not be logged either.
    let _ = client
        .run(
            None,
            "mutation($p: String!) { login(usernameOrEmail: \"alice\", password: $p) { userId } }",
            json!({ "p": "wrong-Passw0rd-xyz" }),
        )
        .await;
    let forged = format!("{}x", &access2[..access2.len() - 1]);
    let _ = client.run(Some(&forged), "{ me { id } }", json!({})).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let text = String::from_utf8_lossy(&logs.0.lock().expect("logs").clone()).to_string();
    assert!(
        text.len() > 1000,
        "logs were captured ({} bytes)",
        text.len()
    );
    let signature = |jwt: &str| jwt.rsplit('.').next().unwrap_or_default().to_string();
    for (what, secret) in [
        ("new user's password", password.to_string()),
        ("demo password", portico::seed::DEMO_PASSWORD.to_string()),
        ("wrong password", "wrong-Passw0rd-xyz".to_string()),
        ("refresh token", refresh.clone()),
        ("access token", access.clone()),
        ("access token signature", signature(&access)),
        ("refreshed access token", access2.clone()),
        ("alice's token signature", signature(&alice_token)),
        ("forged token signature", signature(&forged)),
    ] {
        assert!(!text.contains(&secret), "the {what} appears in the logs");
    }
    // Trust tokens are `v1.<base64url(JSON)>.<sig>`: base64url of `{"aud"` starts `eyJhdWQi`.
    assert!(
        !text.contains("v1.eyJ"),
        "a trust token appears in the logs"
    );
    p.shutdown();
}
