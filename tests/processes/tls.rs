//! Mutual TLS between the gateway and a subgraph, with certificates this test makes: a
//! private CA, the subgraph's server certificate (for 127.0.0.1), the gateway's client
//! certificate, and a stranger's client certificate from another CA.

use std::ffi::OsString;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use serde_json::json;

use super::{Options, Platform, Service, post};

/// A CA: its certificate (PEM) and what signs with it.
fn new_ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).expect("CA certificate");
    (cert.pem(), Issuer::new(params, key))
}

/// A certificate issued by `issuer`: (certificate PEM, key PEM).
fn issue(
    issuer: &Issuer<'static, KeyPair>,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let key = KeyPair::generate().expect("key");
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("params");
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.extended_key_usages = vec![usage];
    let cert = params.signed_by(&key, issuer).expect("certificate");
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, text: &str) -> OsString {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write a PEM file");
    path.into_os_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subgraph_requiring_client_certificates_serves_the_gateway_and_refuses_others() {
    let dir = super::fresh_dir("tls");
    let (ca_pem, ca) = new_ca("Portico test CA");
    let (server_cert, server_key) = issue(
        &ca,
        &["127.0.0.1", "localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (client_cert, client_key) = issue(&ca, &["gateway"], ExtendedKeyUsagePurpose::ClientAuth);
    let (_, stranger_ca) = new_ca("Someone else's CA");
    let (stranger_cert, stranger_key) = issue(
        &stranger_ca,
        &["gateway"],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let ca_file = write(&dir, "ca.pem", &ca_pem);
    let server_cert_file = write(&dir, "users.pem", &server_cert);
    let server_key_file = write(&dir, "users.key", &server_key);
    let client_cert_file = write(&dir, "gateway-client.pem", &client_cert);
    let client_key_file = write(&dir, "gateway-client.key", &client_key);

    let tls_section = format!(
        "[subgraphs.users.tls]\nca_file = {:?}\nclient_cert_file = {:?}\nclient_key_file = {:?}\n",
        ca_file.to_string_lossy(),
        client_cert_file.to_string_lossy(),
        client_key_file.to_string_lossy(),
    );
    let p = Platform::start_with(Options {
        subgraph_args: vec![(
            "users",
            vec![
                "--tls-cert".into(),
                server_cert_file,
                "--tls-key".into(),
                server_key_file,
                "--tls-client-ca".into(),
                ca_file.clone(),
            ],
        )],
        subgraph_config: vec![("users", tls_section.clone())],
        ..Options::default()
    })
    .await;
    let users = p.subgraphs["users"].url();
    assert!(users.starts_with("https://127.0.0.1:"), "{users}");

    // Through the gateway, which trusts the CA and presents its client certificate.
    let query = "{ authServiceVersion nobody: userByUsername(username: \"nobody\") { username } }";
    let (status, body) = post(&p.url(), query).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"data": {"authServiceVersion": "0.1.0", "nobody": null}}),
        "{body}"
    );

    // Straight to the subgraph: no client certificate, a stranger's, or plain HTTP are
    // refused at the TLS layer; the right certificate gets through TLS and then meets the
    // trust-token check (401), which TLS does not replace.
    let ca_cert = reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("CA");
    let client = |identity: Option<(&str, &str)>| {
        let mut builder = reqwest::Client::builder().add_root_certificate(ca_cert.clone());
        if let Some((cert, key)) = identity {
            let pem = format!("{cert}\n{key}");
            builder =
                builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("identity"));
        }
        builder.build().expect("client")
    };
    let send = |client: reqwest::Client, url: String| async move {
        client
            .post(url)
            .json(&json!({"query": "{ __typename }"}))
            .send()
            .await
            .map(|r| r.status().as_u16())
    };
    let no_certificate = send(client(None), users.clone()).await;
    assert!(no_certificate.is_err(), "{no_certificate:?}");
    let stranger = send(client(Some((&stranger_cert, &stranger_key))), users.clone()).await;
    assert!(stranger.is_err(), "{stranger:?}");
    let plain = send(client(None), users.replace("https://", "http://")).await;
    assert!(plain.is_err(), "{plain:?}");
    let right = send(client(Some((&client_cert, &client_key))), users.clone()).await;
    assert_eq!(
        right.ok(),
        Some(401),
        "TLS passes, the trust token is still required"
    );

    // A gateway without the client certificate (and CA) gets no answer from users: that
    // field fails, the rest is served.
    let config = std::fs::read_to_string(p.config()).expect("config");
    let without = config.replace(&tls_section, "");
    assert_ne!(without, config);
    let other_config = dir.join("gateway-without-tls.toml");
    std::fs::write(&other_config, &without).expect("write config");
    let other = Service::start(
        &[
            "gateway".into(),
            "--config".into(),
            other_config.into_os_string(),
        ],
        "127.0.0.1:0",
    )
    .await;
    let (status, body) = post(&other.url(), query).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["authServiceVersion"], "0.1.0", "{body}");
    assert_eq!(body["data"]["nobody"], serde_json::Value::Null, "{body}");
    assert_eq!(body["errors"][0]["path"], json!(["nobody"]), "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "SUBREQUEST_HTTP_ERROR",
        "{body}"
    );
    drop(other);

    // The same settings for every subgraph (`[subgraph_tls]`) instead of users' own.
    let for_all = format!(
        "{without}\n{}",
        tls_section.replace("[subgraphs.users.tls]", "[subgraph_tls]")
    );
    let all_config = dir.join("gateway-tls-for-all.toml");
    std::fs::write(&all_config, for_all).expect("write config");
    let all = Service::start(
        &[
            "gateway".into(),
            "--config".into(),
            all_config.into_os_string(),
        ],
        "127.0.0.1:0",
    )
    .await;
    let (status, body) = post(&all.url(), query).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"data": {"authServiceVersion": "0.1.0", "nobody": null}}),
        "[subgraph_tls] for all: {body}"
    );
    drop(all);
    drop(p);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Subscriptions to a subgraph served over TLS: notifications runs with a certificate
/// from a private CA (`wss://`), the gateway trusts that CA (`[subgraphs.notifications.tls]
/// ca_file`); alice subscribes over SSE through the gateway, bob likes her post, and the
/// event arrives with bob's username resolved. Events cross the processes through a
/// private Redis (the bus, and the notifications' live fan-out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_reach_a_subgraph_served_over_tls() {
    use portico_kit::testing::{PrivateRedis, free_port};
    let port = free_port();
    let Some(redis) = PrivateRedis::start_or_skip(port, "wss subscription test") else {
        return;
    };
    assert!(redis.wait_ready().await, "the private redis-server starts");
    let dir = super::fresh_dir("wss");
    let (ca_pem, ca) = new_ca("Portico test CA");
    let (server_cert, server_key) = issue(
        &ca,
        &["127.0.0.1", "localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let ca_file = write(&dir, "ca.pem", &ca_pem);
    let cert_file = write(&dir, "notifications.pem", &server_cert);
    let key_file = write(&dir, "notifications.key", &server_key);
    let p = Platform::start_with(Options {
        redis: Some(redis.url()),
        subgraph_args: vec![(
            "notifications",
            vec!["--tls-cert".into(), cert_file, "--tls-key".into(), key_file],
        )],
        subgraph_config: vec![(
            "notifications",
            format!(
                "[subgraphs.notifications.tls]\nca_file = {:?}\n",
                ca_file.to_string_lossy()
            ),
        )],
        ..Options::default()
    })
    .await;
    assert!(p.subgraphs["notifications"].url().starts_with("https://"));
    let url = p.url();
    let register = |name: &'static str| {
        let url = url.clone();
        async move {
            let (status, body) = super::post_as(
                &url,
                None,
                "mutation($u: String!, $e: String!) { register(username: $u, email: $e, password: \"Correct-horse-9\") { accessToken } }",
                json!({ "u": name, "e": format!("{name}@example.com") }),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            body["data"]["register"]["accessToken"]
                .as_str()
                .unwrap_or_else(|| panic!("{name} registers: {body}"))
                .to_string()
        }
    };
    let alice = register("alice").await;
    let bob = register("bob").await;
    let (_, body) = super::post_as(
        &url,
        Some(&alice),
        "mutation { createPost(caption: \"over TLS\") { id } }",
        json!({}),
    )
    .await;
    let post = body["data"]["createPost"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("alice posts: {body}"))
        .to_string();
    let mut stream = reqwest::Client::new()
        .post(&url)
        .header("accept", "text/event-stream")
        .bearer_auth(&alice)
        .json(&json!({"query": "subscription { notificationAdded { kind actor { username } post { caption } } }"}))
        .send()
        .await
        .expect("subscribe");
    assert_eq!(stream.status().as_u16(), 200);
    let (liker_url, liker_bob, liker_post) = (url.clone(), bob.clone(), post.clone());
    let liker = tokio::spawn(async move {
        for _ in 0..120 {
            for mutation in ["unlikePost", "likePost"] {
                let _ = super::post_as(
                    &liker_url,
                    Some(&liker_bob),
                    &format!("mutation($p: ID!) {{ {mutation}(postId: $p) {{ id }} }}"),
                    json!({ "p": liker_post }),
                )
                .await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    });
    let mut text = String::new();
    while !text.contains("event: next") || !text.contains("\n\n") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(60), stream.chunk())
            .await
            .expect("an event within 60 s")
            .expect("chunk")
            .expect("the stream stays open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    liker.abort();
    assert!(text.contains("\"username\":\"bob\""), "{text}");
    assert!(text.contains("\"caption\":\"over TLS\""), "{text}");
    assert!(!text.contains("errors"), "{text}");
    drop(p);
    let _ = std::fs::remove_dir_all(&dir);
}
