//! `compose.yml` cannot run here (no Docker engine), so this test parses it and checks
//! the security properties of the deployment: one image, databases and subgraphs on an
//! internal network only, the gateway the only published port, health checks, keys
//! mounted read-only and never baked in.

use serde_yaml_ng::Value;

const SUBGRAPHS: [&str; 6] = [
    "auth",
    "users",
    "posts",
    "comments",
    "likes",
    "notifications",
];

fn compose() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../compose.yml"))
        .expect("compose.yml at the repository root");
    let mut v: Value = serde_yaml_ng::from_str(&text).expect("compose.yml is valid YAML");
    v.apply_merge().expect("YAML merge keys resolve");
    v
}

fn service<'a>(c: &'a Value, name: &str) -> &'a Value {
    c.get("services")
        .and_then(|s| s.get(name))
        .unwrap_or_else(|| panic!("service {name} exists"))
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_sequence)
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn only_the_gateway_publishes_a_port() {
    let c = compose();
    let services = c["services"].as_mapping().expect("services map");
    for (name, svc) in services {
        let name = name.as_str().expect("service name");
        let published = svc.get("ports").is_some();
        assert_eq!(
            published,
            name == "gateway",
            "{name}: only the gateway publishes ports"
        );
    }
    assert_eq!(strings(service(&c, "gateway").get("ports")), ["4000:4000"]);
}

#[test]
fn subgraphs_and_stores_live_on_the_internal_network_only() {
    let c = compose();
    assert_eq!(c["networks"]["internal"]["internal"].as_bool(), Some(true));
    for name in SUBGRAPHS.iter().chain(&["postgres", "redis"]) {
        assert_eq!(
            strings(service(&c, name).get("networks")),
            ["internal"],
            "{name}"
        );
    }
    let gw = strings(service(&c, "gateway").get("networks"));
    assert!(gw.contains(&"internal".to_string()) && gw.contains(&"public".to_string()));
}

#[test]
fn every_service_has_a_health_check_and_the_gateway_waits_for_healthy_subgraphs() {
    let c = compose();
    for name in SUBGRAPHS.iter().chain(&["postgres", "redis", "gateway"]) {
        assert!(
            service(&c, name).get("healthcheck").is_some(),
            "{name} has a healthcheck"
        );
    }
    let deps = &service(&c, "gateway")["depends_on"];
    for name in SUBGRAPHS {
        assert_eq!(
            deps[name]["condition"].as_str(),
            Some("service_healthy"),
            "{name}"
        );
    }
}

#[test]
fn each_subgraph_runs_the_one_image_with_its_own_postgres_database() {
    let c = compose();
    let init = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/postgres-init.sql"
    ))
    .expect("deploy/postgres-init.sql");
    for name in SUBGRAPHS {
        let svc = service(&c, name);
        assert_eq!(svc["image"].as_str(), Some("portico:latest"), "{name}");
        let cmd = strings(svc.get("command"));
        assert_eq!(
            cmd[..2],
            ["subgraph".to_string(), name.to_string()],
            "{name}"
        );
        assert!(
            cmd.contains(&"--trust-public-key".to_string()),
            "{name} verifies trust tokens"
        );
        let url = svc["environment"]["PORTICO_DATABASE_URL"]
            .as_str()
            .expect("database url");
        assert!(
            url.starts_with("postgres://") && url.ends_with(&format!("/{name}")),
            "{name}: {url}"
        );
        assert!(
            init.contains(&format!("CREATE DATABASE {name};")),
            "{name} database is created"
        );
    }
    assert_eq!(
        service(&c, "gateway")["image"].as_str(),
        Some("portico:latest")
    );
}

#[test]
fn keys_are_mounted_read_only_and_never_baked_into_the_image() {
    let c = compose();
    for name in SUBGRAPHS.iter().chain(&["gateway"]) {
        let vols = strings(service(&c, name).get("volumes"));
        let keys: Vec<_> = vols.iter().filter(|v| v.contains("/keys/")).collect();
        assert!(!keys.is_empty(), "{name} mounts its keys");
        for v in keys {
            assert!(v.ends_with(":ro"), "{name}: {v} is read-only");
        }
    }
    let dockerfile = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Dockerfile"))
        .expect("Dockerfile");
    assert!(
        !dockerfile.to_lowercase().contains(".pem"),
        "no key material in the image"
    );
    assert!(dockerfile.contains("AS build"), "multi-stage build");
}

#[tokio::test]
async fn the_deployment_gateway_config_is_valid_for_the_demo_supergraph() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/gateway.toml"
    ))
    .expect("deploy/gateway.toml");
    let config = portico_gateway::GatewayConfig::from_toml(&text).expect("valid gateway config");
    assert!(
        !config.dev,
        "production mode: no introspection, no playground"
    );
    assert_eq!(
        config.subgraphs.len(),
        6,
        "every subgraph routed on the internal network"
    );
    portico_gateway::Gateway::new(
        config,
        portico::platform::DEMO_SUPERGRAPH,
        portico_trust::TrustSigner::generate(),
    )
    .expect("the gateway accepts its deployment config");
}
