//! `deploy/k8s` cannot be applied here (no cluster), so this test checks it two ways.
//!
//! 1. Against the Kubernetes JSON schemas: `kubernetes-validate --strict` (PyPI, schemas
//!    bundled, installed by `scripts/k8s-validator.sh`, which `.ci/run` runs) on every
//!    manifest file, and on the output of `kubectl kustomize` for `deploy/k8s` and
//!    `deploy/k8s-ingress` when kubectl is installed. Validator missing: fails under
//!    `CI=true`, prints a loud SKIPPED line elsewhere.
//! 2. In code, what the schemas cannot say: probes, resources and a locked-down security
//!    context on every workload; secrets only from Secrets (the gateway alone holds the
//!    trust signing key, auth alone the RSA key, each database its own password);
//!    NetworkPolicies (only the gateway reaches subgraphs, only each subgraph its own
//!    database, gateway and subgraphs Redis); autoscaling; nothing but the gateway
//!    exposed; container arguments the CLI in `src/main.rs` accepts; config, URLs and
//!    file paths that point at Services and mounted files that exist.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize as _;
use serde_yaml_ng::Value;

const SUBGRAPHS: [&str; 6] = [
    "auth",
    "users",
    "posts",
    "comments",
    "likes",
    "notifications",
];
const NAMESPACE: &str = "portico";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn base_dir() -> PathBuf {
    repo().join("deploy/k8s")
}

fn ingress_dir() -> PathBuf {
    repo().join("deploy/k8s-ingress")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn yaml_docs(text: &str, what: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{what}: invalid YAML: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

fn kustomization(dir: &Path) -> Value {
    let path = dir.join("kustomization.yaml");
    let mut docs = yaml_docs(&read(&path), &path.display().to_string());
    assert_eq!(docs.len(), 1, "{}: one document", path.display());
    docs.remove(0)
}

fn seq(v: &Value) -> &[Value] {
    v.as_sequence().map(Vec::as_slice).unwrap_or(&[])
}

fn strs(v: &Value) -> Vec<String> {
    seq(v)
        .iter()
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn kind(o: &Value) -> &str {
    s(&o["kind"])
}

fn name(o: &Value) -> &str {
    s(&o["metadata"]["name"])
}

/// The manifest files a kustomization lists under `resources` (bases excluded).
fn resource_files(dir: &Path) -> Vec<PathBuf> {
    strs(&kustomization(dir)["resources"])
        .into_iter()
        .filter(|r| r.ends_with(".yaml"))
        .map(|r| dir.join(r))
        .collect()
}

fn objects_in(files: &[PathBuf]) -> Vec<Value> {
    files
        .iter()
        .flat_map(|f| yaml_docs(&read(f), &f.display().to_string()))
        .collect()
}

/// Every object of `deploy/k8s`.
fn base() -> Vec<Value> {
    objects_in(&resource_files(&base_dir()))
}

fn find<'a>(objects: &'a [Value], kind_: &str, name_: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| kind(o) == kind_ && name(o) == name_)
        .unwrap_or_else(|| panic!("{kind_} {name_} exists"))
}

fn of_kind<'a>(objects: &'a [Value], kind_: &'a str) -> impl Iterator<Item = &'a Value> {
    objects.iter().filter(move |o| kind(o) == kind_)
}

fn workloads(objects: &[Value]) -> impl Iterator<Item = &Value> {
    objects
        .iter()
        .filter(|o| matches!(kind(o), "Deployment" | "StatefulSet"))
}

fn pod_spec(workload: &Value) -> &Value {
    &workload["spec"]["template"]["spec"]
}

fn pod_labels(workload: &Value) -> &Value {
    &workload["spec"]["template"]["metadata"]["labels"]
}

fn containers(workload: &Value) -> Vec<&Value> {
    let pod = pod_spec(workload);
    seq(&pod["initContainers"])
        .iter()
        .chain(seq(&pod["containers"]))
        .collect()
}

/// The single container of a workload.
fn container(workload: &Value) -> &Value {
    let all = containers(workload);
    assert_eq!(all.len(), 1, "{}: one container", name(workload));
    all[0]
}

/// A Service's selector (a plain label map) picks pods with these labels.
fn service_selects(svc: &Value, labels: &Value) -> bool {
    svc["spec"]["selector"]
        .as_mapping()
        .is_some_and(|m| !m.is_empty() && m.iter().all(|(k, v)| &labels[k] == v))
}

fn port_number(v: &Value) -> Option<u64> {
    v.as_u64()
}

// ---------------------------------------------------------------------------------------
// 1. Schemas

fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// A tool this test needs is missing: fail in CI, say so loudly elsewhere.
fn missing(what: &str, why: &str) {
    if ci() {
        panic!("{what} cannot run in CI: {why}");
    }
    eprintln!("\n!!!!! SKIPPED {what}: {why} !!!!!\n");
}

fn runs(program: &Path, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `$KUBERNETES_VALIDATE`, else `kubernetes-validate` on the PATH, else where
/// `scripts/k8s-validator.sh` installs it.
fn validator() -> Result<PathBuf, String> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("KUBERNETES_VALIDATE") {
        candidates.push(p.into());
    }
    candidates.push("kubernetes-validate".into());
    candidates.push(std::env::temp_dir().join("portico-k8s-validate/bin/kubernetes-validate"));
    candidates
        .into_iter()
        .find(|c| runs(c, &["--version"]))
        .ok_or_else(|| {
            "kubernetes-validate not found: run `bash scripts/k8s-validator.sh` \
             (installs it from PyPI) or set KUBERNETES_VALIDATE"
                .to_string()
        })
}

/// Runs the validator in strict mode (unknown fields are errors) on `files`, which hold
/// `expected` objects: each must be reported as validated against a schema (a kind the
/// validator has no schema for is a warning it would pass, so it fails here).
fn validate(validator: &Path, files: &[PathBuf], expected: usize) {
    let out = Command::new(validator)
        .arg("--strict")
        .args(files)
        .output()
        .expect("the validator runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "manifests do not validate against the Kubernetes schemas:\n{report}"
    );
    let lines: Vec<&str> = report.lines().filter(|l| !l.trim().is_empty()).collect();
    let unvalidated: Vec<&&str> = lines
        .iter()
        .filter(|l| !(l.starts_with("INFO") && l.contains(" passed for resource ")))
        .collect();
    assert!(
        unvalidated.is_empty(),
        "every object must be checked against a schema:\n{}",
        unvalidated
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(lines.len(), expected, "one verdict per object:\n{report}");
}

/// `kubectl kustomize DIR` (kubectl embeds kustomize; no cluster needed).
fn kustomize(kubectl: &Path, dir: &Path) -> String {
    let out = Command::new(kubectl)
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl kustomize {} fails:\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("kustomize prints UTF-8")
}

#[test]
fn every_manifest_validates_against_the_kubernetes_schemas() {
    let validator = match validator() {
        Ok(v) => v,
        Err(why) => return missing("Kubernetes schema validation", &why),
    };
    let mut files = resource_files(&base_dir());
    files.extend(resource_files(&ingress_dir()));
    let objects = objects_in(&files).len();
    assert!(
        objects >= 40,
        "{objects} objects: the manifests are all read"
    );
    validate(&validator, &files, objects);
    println!(
        "kubernetes-validate --strict: {objects} objects in {} files valid",
        files.len()
    );

    // What `kubectl apply -k` would send: the generated ConfigMaps, namespaces and name
    // references filled in, the overlay's patches applied.
    let kubectl = PathBuf::from("kubectl");
    if !runs(&kubectl, &["version", "--client"]) {
        // kubectl comes with the machine image, not from a package registry: its absence
        // is not a CI failure, the files themselves were validated above.
        eprintln!("\n!!!!! SKIPPED `kubectl kustomize` rendering: kubectl not found !!!!!\n");
        return;
    }
    let scratch = std::env::temp_dir().join(format!("portico-k8s-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    for dir in [base_dir(), ingress_dir()] {
        let rendered = kustomize(&kubectl, &dir);
        let docs = yaml_docs(&rendered, "kustomize output");
        let file = scratch.join(format!(
            "{}.yaml",
            dir.file_name().and_then(|n| n.to_str()).unwrap_or("out")
        ));
        std::fs::write(&file, &rendered).expect("write rendered manifests");
        validate(&validator, std::slice::from_ref(&file), docs.len());
        assert!(
            docs.iter()
                .all(|d| kind(d) == "Namespace" || s(&d["metadata"]["namespace"]) == NAMESPACE),
            "{}: everything in namespace {NAMESPACE}",
            dir.display()
        );
        // The gateway mounts the generated (hash-suffixed) ConfigMaps.
        let gateway = find(&docs, "Deployment", "gateway");
        let generated: BTreeSet<&str> = of_kind(&docs, "ConfigMap").map(name).collect();
        let mounted: Vec<&str> = seq(&pod_spec(gateway)["volumes"])
            .iter()
            .flat_map(|v| seq(&v["projected"]["sources"]))
            .filter_map(|src| src["configMap"]["name"].as_str())
            .collect();
        assert_eq!(mounted.len(), 2, "gateway config and supergraph");
        for m in mounted {
            assert!(generated.contains(m), "{m} is a generated ConfigMap");
        }
        println!(
            "kubectl kustomize {}: {} objects valid",
            dir.display(),
            docs.len()
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

#[test]
fn every_file_of_the_deployment_is_listed_in_its_kustomization() {
    for dir in [base_dir(), ingress_dir()] {
        let k = kustomization(&dir);
        let mut listed: BTreeSet<String> = strs(&k["resources"]).into_iter().collect();
        listed.extend(seq(&k["patches"]).iter().map(|p| s(&p["path"]).to_string()));
        for generator in seq(&k["configMapGenerator"]) {
            listed.extend(strs(&generator["files"]));
        }
        for entry in std::fs::read_dir(&dir).expect("deploy dir") {
            let file = entry.expect("dir entry").file_name();
            let file = file.to_string_lossy();
            if file != "kustomization.yaml" {
                assert!(
                    listed.contains(file.as_ref()),
                    "{}/{file} is not in its kustomization.yaml",
                    dir.display()
                );
            }
        }
        for l in &listed {
            assert!(dir.join(l).exists(), "{}: {l} exists", dir.display());
        }
    }
    let k = kustomization(&base_dir());
    assert_eq!(s(&k["namespace"]), NAMESPACE);
    assert_eq!(
        strs(&kustomization(&ingress_dir())["resources"])[0],
        "../k8s",
        "the ingress overlay is the whole deployment plus the Ingress"
    );
}

// ---------------------------------------------------------------------------------------
// 2. Properties

#[test]
fn every_workload_has_probes_resources_and_a_locked_down_security_context() {
    let objects = base();
    let mut seen = BTreeSet::new();
    for w in workloads(&objects) {
        let n = name(w);
        seen.insert(n.to_string());
        assert_eq!(s(&w["metadata"]["namespace"]), NAMESPACE, "{n}");
        let pod = pod_spec(w);
        assert_eq!(
            pod["automountServiceAccountToken"].as_bool(),
            Some(false),
            "{n}: no API token in the pod"
        );
        for host in ["hostNetwork", "hostPID", "hostIPC"] {
            assert_ne!(pod[host].as_bool(), Some(true), "{n}: {host}");
        }
        for v in seq(&pod["volumes"]) {
            assert!(v["hostPath"].is_null(), "{n}: no hostPath volume");
        }
        let psc = &pod["securityContext"];
        assert_eq!(
            psc["runAsNonRoot"].as_bool(),
            Some(true),
            "{n}: runAsNonRoot"
        );
        assert_ne!(psc["runAsUser"].as_u64(), Some(0), "{n}: not uid 0");
        assert_eq!(
            s(&psc["seccompProfile"]["type"]),
            "RuntimeDefault",
            "{n}: seccomp"
        );
        for c in containers(w) {
            let cn = format!("{n}/{}", s(&c["name"]));
            let ports: BTreeSet<&str> = seq(&c["ports"]).iter().map(|p| s(&p["name"])).collect();
            for probe in ["readinessProbe", "livenessProbe"] {
                let p = &c[probe];
                assert!(p.is_mapping(), "{cn}: {probe}");
                let handlers = ["httpGet", "exec", "tcpSocket", "grpc"];
                assert!(
                    handlers.iter().any(|h| p[*h].is_mapping()),
                    "{cn}: {probe} has a handler"
                );
                if let Some(port) = p["httpGet"]["port"].as_str() {
                    assert!(ports.contains(port), "{cn}: {probe} port {port} exists");
                }
            }
            for (section, resource) in [
                ("requests", "cpu"),
                ("requests", "memory"),
                ("limits", "cpu"),
                ("limits", "memory"),
            ] {
                let v = &c["resources"][section][resource];
                assert!(
                    v.is_string() || v.is_number(),
                    "{cn}: resources.{section}.{resource}"
                );
            }
            let sc = &c["securityContext"];
            assert_eq!(
                sc["runAsNonRoot"].as_bool(),
                Some(true),
                "{cn}: runAsNonRoot"
            );
            assert_eq!(
                sc["readOnlyRootFilesystem"].as_bool(),
                Some(true),
                "{cn}: readOnlyRootFilesystem"
            );
            assert_eq!(
                sc["allowPrivilegeEscalation"].as_bool(),
                Some(false),
                "{cn}: allowPrivilegeEscalation"
            );
            assert_ne!(sc["privileged"].as_bool(), Some(true), "{cn}: privileged");
            assert_eq!(
                strs(&sc["capabilities"]["drop"]),
                ["ALL"],
                "{cn}: drops every capability"
            );
            assert!(
                seq(&sc["capabilities"]["add"]).is_empty(),
                "{cn}: adds no capability"
            );
        }
    }
    let mut expected: BTreeSet<String> = ["gateway", "redis"].map(String::from).into();
    for sg in SUBGRAPHS {
        expected.insert(sg.to_string());
        expected.insert(format!("postgres-{sg}"));
    }
    assert_eq!(seen, expected, "one workload per service and per database");
    // The Namespace enforces the same through Pod Security Admission.
    let ns = find(&objects, "Namespace", NAMESPACE);
    assert_eq!(
        s(&ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]),
        "restricted"
    );
}

#[test]
fn probes_ask_the_endpoints_the_servers_serve() {
    let gateway_http = read(&repo().join("gateway/server/src/http/mod.rs"));
    let kit = read(&repo().join("subgraphs/kit/src/server.rs"));
    let objects = base();
    let gw = container(find(&objects, "Deployment", "gateway"));
    assert_eq!(s(&gw["readinessProbe"]["httpGet"]["path"]), "/ready");
    assert_eq!(s(&gw["livenessProbe"]["httpGet"]["path"]), "/health");
    for path in ["/ready", "/health"] {
        assert!(
            gateway_http.contains(&format!(".route(\"{path}\"")),
            "the gateway serves {path}"
        );
    }
    assert!(
        kit.contains(".route(\"/health\""),
        "subgraphs serve /health"
    );
    for sg in SUBGRAPHS {
        let c = container(find(&objects, "Deployment", sg));
        for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
            assert_eq!(s(&c[probe]["httpGet"]["path"]), "/health", "{sg} {probe}");
        }
    }
}

/// Where a workload's Secrets go: `(secret, key)` pairs read through volumes or
/// `secretKeyRef`, and the mount paths of secret volumes.
fn secret_uses(w: &Value) -> BTreeSet<(String, String)> {
    let n = name(w);
    let pod = pod_spec(w);
    let mut uses = BTreeSet::new();
    let mut secret_volumes = BTreeSet::new();
    for v in seq(&pod["volumes"]) {
        let sources: Vec<&Value> = if v["secret"].is_mapping() {
            vec![&v["secret"]]
        } else {
            seq(&v["projected"]["sources"])
                .iter()
                .map(|src| &src["secret"])
                .filter(|sec| sec.is_mapping())
                .collect()
        };
        for sec in &sources {
            let secret = s(&sec["secretName"]).to_string() + s(&sec["name"]);
            let items = seq(&sec["items"]);
            assert!(
                !items.is_empty(),
                "{n}: secret {secret} mounts named keys only"
            );
            for item in items {
                uses.insert((secret.clone(), s(&item["key"]).to_string()));
            }
        }
        if !sources.is_empty() {
            secret_volumes.insert(s(&v["name"]).to_string());
        }
    }
    for c in containers(w) {
        for m in seq(&c["volumeMounts"]) {
            if secret_volumes.contains(s(&m["name"])) {
                assert_eq!(
                    m["readOnly"].as_bool(),
                    Some(true),
                    "{n}: secret volume {} is mounted read-only",
                    s(&m["name"])
                );
            }
        }
        for e in seq(&c["env"]) {
            let var = s(&e["name"]);
            let from = &e["valueFrom"]["secretKeyRef"];
            if from.is_mapping() {
                uses.insert((s(&from["name"]).to_string(), s(&from["key"]).to_string()));
                continue;
            }
            let upper = var.to_ascii_uppercase();
            if ["PASSWORD", "SECRET", "TOKEN", "PRIVATE"]
                .iter()
                .any(|w| upper.contains(w))
            {
                // Only a file name may be given inline, and it must come from a Secret.
                let path = s(&e["value"]);
                assert!(
                    upper.ends_with("_FILE")
                        && seq(&c["volumeMounts"]).iter().any(|m| {
                            secret_volumes.contains(s(&m["name"]))
                                && path.starts_with(&format!("{}/", s(&m["mountPath"])))
                        }),
                    "{n}: {var} must come from a Secret (secretKeyRef, or a file in a secret volume)"
                );
            }
        }
    }
    uses
}

/// Every string in a YAML value, with its path.
fn strings_in<'a>(v: &'a Value, path: String, out: &mut Vec<(String, &'a str)>) {
    match v {
        Value::String(x) => out.push((path, x)),
        Value::Sequence(xs) => {
            for (i, x) in xs.iter().enumerate() {
                strings_in(x, format!("{path}[{i}]"), out);
            }
        }
        Value::Mapping(m) => {
            for (k, x) in m {
                strings_in(x, format!("{path}.{}", k.as_str().unwrap_or("?")), out);
            }
        }
        Value::Tagged(t) => strings_in(&t.value, path, out),
        _ => {}
    }
}

#[test]
fn secrets_come_only_from_secrets_and_each_key_only_where_it_is_needed() {
    let mut files = resource_files(&base_dir());
    files.extend(resource_files(&ingress_dir()));
    let objects = objects_in(&files);
    for o in &objects {
        assert_ne!(
            kind(o),
            "Secret",
            "no Secret in the manifests: created with kubectl"
        );
        let mut texts = Vec::new();
        strings_in(o, format!("{}/{}", kind(o), name(o)), &mut texts);
        for (path, text) in texts {
            assert!(
                !text.contains("-----BEGIN") && !text.contains("PRIVATE KEY"),
                "{path}: key material inline"
            );
            if let Some((_, rest)) = text.split_once("://") {
                let authority = rest.split('/').next().unwrap_or("");
                if let Some((userinfo, _)) = authority.split_once('@') {
                    assert!(!userinfo.contains(':'), "{path}: password in a URL");
                }
            }
        }
    }
    let gw_config = read(&base_dir().join("gateway.toml"));
    assert!(!gw_config.contains("-----BEGIN"), "no key in gateway.toml");

    let objects = base();
    let uses = |n: &str| {
        let w = workloads(&objects)
            .find(|w| name(w) == n)
            .unwrap_or_else(|| panic!("workload {n}"));
        secret_uses(w)
    };
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        uses("gateway"),
        [pair("portico-gateway-trust", "gateway.pem")].into(),
        "the gateway holds the trust signing key and nothing else"
    );
    for sg in SUBGRAPHS {
        let mut expected: BTreeSet<_> = [
            pair("portico-gateway-public", "gateway.pub.pem"),
            pair("portico-postgres", sg),
        ]
        .into();
        if sg == "auth" {
            expected.insert(pair("portico-auth-key", "auth.pem"));
        }
        assert_eq!(
            uses(sg),
            expected,
            "{sg}: the gateway's public key, its own database password{}",
            if sg == "auth" { ", the RSA key" } else { "" }
        );
        assert_eq!(
            uses(&format!("postgres-{sg}")),
            [pair("portico-postgres", sg)].into(),
            "postgres-{sg}: its own password only"
        );
    }
    assert!(uses("redis").is_empty());
}

fn selects(selector: &Value, labels: &Value) -> bool {
    let by_label = selector["matchLabels"]
        .as_mapping()
        .map(|m| m.iter().all(|(k, v)| &labels[k] == v))
        .unwrap_or(true);
    let by_expression = seq(&selector["matchExpressions"]).iter().all(|e| {
        let value = &labels[s(&e["key"])];
        let within = strs(&e["values"]).iter().any(|x| value.as_str() == Some(x));
        match s(&e["operator"]) {
            "In" => within,
            "NotIn" => !within,
            "Exists" => !value.is_null(),
            "DoesNotExist" => value.is_null(),
            other => panic!("unknown selector operator {other}"),
        }
    });
    by_label && by_expression
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Peer {
    /// No `from`, or an ipBlock: any address.
    Anyone,
    /// Pods of other namespaces (a namespaceSelector).
    OtherNamespaces,
    /// A workload of this namespace.
    Pod(String),
}

/// Who may open a connection to each workload's pods, on which port (`None`: any).
fn ingress_allowed(objects: &[Value]) -> BTreeMap<String, BTreeSet<(Peer, Option<u64>)>> {
    let pods: Vec<(&str, &Value)> = workloads(objects)
        .map(|w| (name(w), pod_labels(w)))
        .collect();
    let mut allowed: BTreeMap<String, BTreeSet<(Peer, Option<u64>)>> = pods
        .iter()
        .map(|(n, _)| (n.to_string(), BTreeSet::new()))
        .collect();
    for policy in of_kind(objects, "NetworkPolicy") {
        let spec = &policy["spec"];
        for (target, labels) in &pods {
            if !selects(&spec["podSelector"], labels) {
                continue;
            }
            for rule in seq(&spec["ingress"]) {
                let ports: Vec<Option<u64>> = if seq(&rule["ports"]).is_empty() {
                    vec![None]
                } else {
                    seq(&rule["ports"])
                        .iter()
                        .map(|p| port_number(&p["port"]))
                        .collect()
                };
                let mut peers = BTreeSet::new();
                if seq(&rule["from"]).is_empty() {
                    peers.insert(Peer::Anyone);
                }
                for peer in seq(&rule["from"]) {
                    if peer["ipBlock"].is_mapping() {
                        peers.insert(Peer::Anyone);
                    } else if !peer["namespaceSelector"].is_null() {
                        peers.insert(Peer::OtherNamespaces);
                    } else {
                        for (source, source_labels) in &pods {
                            if selects(&peer["podSelector"], source_labels) {
                                peers.insert(Peer::Pod(source.to_string()));
                            }
                        }
                    }
                }
                let entry = allowed.entry(target.to_string()).or_default();
                for peer in peers {
                    for port in &ports {
                        entry.insert((peer.clone(), *port));
                    }
                }
            }
        }
    }
    allowed
}

#[test]
fn network_policies_let_only_the_gateway_reach_subgraphs_and_each_subgraph_its_own_database() {
    let objects = base();
    let policies: Vec<&Value> = of_kind(&objects, "NetworkPolicy").collect();
    for p in &policies {
        assert_eq!(
            strs(&p["spec"]["policyTypes"]),
            ["Ingress"],
            "{}: ingress rules only (egress is not restricted)",
            name(p)
        );
    }
    assert!(
        policies.iter().any(|p| p["spec"]["podSelector"]
            .as_mapping()
            .is_some_and(|m| m.is_empty())
            && seq(&p["spec"]["ingress"]).is_empty()),
        "a default-deny-ingress policy selects every pod"
    );
    let allowed = ingress_allowed(&objects);
    let pod = |n: &str, port: u64| (Peer::Pod(n.to_string()), Some(port));
    assert_eq!(
        allowed["gateway"],
        [(Peer::Anyone, Some(4000))].into(),
        "the gateway's HTTP port is the public door"
    );
    for sg in SUBGRAPHS {
        assert_eq!(
            allowed[sg],
            [pod("gateway", 4000)].into(),
            "only the gateway reaches {sg}{}",
            if sg == "auth" { " (and its JWKS)" } else { "" }
        );
        assert_eq!(
            allowed[&format!("postgres-{sg}")],
            [pod(sg, 5432)].into(),
            "only {sg} reaches its database"
        );
    }
    let redis_clients: BTreeSet<_> = SUBGRAPHS
        .iter()
        .chain(&["gateway"])
        .map(|n| pod(n, 6379))
        .collect();
    assert_eq!(
        allowed["redis"], redis_clients,
        "gateway and subgraphs reach Redis"
    );

    // The ingress overlay narrows the public door to the ingress controller's namespace.
    let patch = objects_in(&[ingress_dir().join("gateway-behind-proxy.yaml")]);
    let mut overlay = objects.clone();
    let gw_policy = overlay
        .iter_mut()
        .find(|o| kind(o) == "NetworkPolicy" && name(o) == "gateway")
        .expect("gateway NetworkPolicy");
    gw_policy["spec"]["ingress"] =
        find(&patch, "NetworkPolicy", "gateway")["spec"]["ingress"].clone();
    assert_eq!(
        ingress_allowed(&overlay)["gateway"],
        [(Peer::OtherNamespaces, Some(4000))].into(),
        "behind the Ingress, only the controller's namespace reaches the gateway"
    );
}

#[test]
fn only_the_gateway_is_exposed_and_services_route_to_their_workloads() {
    let mut files = resource_files(&base_dir());
    files.extend(resource_files(&ingress_dir()));
    let all = objects_in(&files);
    for svc in of_kind(&all, "Service") {
        let n = name(svc);
        let t = svc["spec"]["type"].as_str().unwrap_or("ClusterIP");
        assert_eq!(t, "ClusterIP", "{n}: no NodePort or LoadBalancer");
        assert!(svc["spec"]["externalIPs"].is_null(), "{n}: no externalIPs");
        for p in seq(&svc["spec"]["ports"]) {
            assert!(p["nodePort"].is_null(), "{n}: no nodePort");
        }
    }
    let base = base();
    assert_eq!(
        of_kind(&base, "Ingress").count(),
        0,
        "no Ingress unless asked for"
    );
    let ingresses: Vec<&Value> = of_kind(&all, "Ingress").collect();
    assert_eq!(ingresses.len(), 1, "the optional Ingress");
    for rule in seq(&ingresses[0]["spec"]["rules"]) {
        for path in seq(&rule["http"]["paths"]) {
            assert_eq!(
                s(&path["backend"]["service"]["name"]),
                "gateway",
                "the Ingress routes to the gateway only"
            );
        }
    }
    // Every workload is reached through a Service of its own name, whose selector picks
    // exactly its pods, on a named port of its container.
    for w in workloads(&base) {
        let n = name(w);
        let svc = find(&base, "Service", n);
        let matching: Vec<&str> = workloads(&base)
            .filter(|x| service_selects(svc, pod_labels(x)))
            .map(name)
            .collect();
        assert_eq!(matching, [n], "Service {n} selects only {n}'s pods");
        let ports: BTreeSet<&str> = seq(&container(w)["ports"])
            .iter()
            .map(|p| s(&p["name"]))
            .collect();
        for p in seq(&svc["spec"]["ports"]) {
            assert!(
                ports.contains(s(&p["targetPort"])),
                "Service {n} targets a named port of {n}"
            );
        }
    }
}

#[test]
fn the_gateway_and_likes_autoscale_on_cpu_and_the_gateway_survives_disruptions() {
    let objects = base();
    let hpas: Vec<&Value> = of_kind(&objects, "HorizontalPodAutoscaler").collect();
    let targets: BTreeSet<&str> = hpas
        .iter()
        .map(|h| s(&h["spec"]["scaleTargetRef"]["name"]))
        .collect();
    assert_eq!(
        targets,
        ["gateway", "likes"].into(),
        "what scales on its own"
    );
    let mut gateway_min = 0;
    for h in hpas {
        let target = s(&h["spec"]["scaleTargetRef"]["name"]);
        assert_eq!(s(&h["apiVersion"]), "autoscaling/v2", "{target}");
        assert_eq!(s(&h["spec"]["scaleTargetRef"]["kind"]), "Deployment");
        let min = h["spec"]["minReplicas"].as_u64().unwrap_or(1);
        let max = h["spec"]["maxReplicas"].as_u64().unwrap_or(0);
        assert!(min >= 2 && max > min, "{target}: {min}..{max} replicas");
        if target == "gateway" {
            gateway_min = min;
        }
        assert!(
            seq(&h["spec"]["metrics"]).iter().any(|m| {
                s(&m["type"]) == "Resource"
                    && s(&m["resource"]["name"]) == "cpu"
                    && s(&m["resource"]["target"]["type"]) == "Utilization"
                    && m["resource"]["target"]["averageUtilization"]
                        .as_u64()
                        .is_some_and(|u| (1..=100).contains(&u))
            }),
            "{target}: scales on CPU utilisation"
        );
        let d = find(&objects, "Deployment", target);
        assert!(
            d["spec"]["replicas"].is_null(),
            "{target}: the autoscaler owns `replicas` (kubectl apply would reset it)"
        );
    }
    let gateway = find(&objects, "Deployment", "gateway");
    let pdbs: Vec<&Value> = of_kind(&objects, "PodDisruptionBudget")
        .filter(|p| selects(&p["spec"]["selector"], pod_labels(gateway)))
        .collect();
    assert_eq!(pdbs.len(), 1, "one PodDisruptionBudget for the gateway");
    assert_eq!(s(&pdbs[0]["apiVersion"]), "policy/v1");
    let min_available = pdbs[0]["spec"]["minAvailable"].as_u64().unwrap_or(0);
    assert!(
        min_available >= 1 && min_available < gateway_min,
        "a voluntary disruption keeps {min_available} of at least {gateway_min} gateways"
    );
}

/// What `src/main.rs` declares for one subcommand's clap struct.
#[derive(Debug, Default)]
struct CliArgs {
    /// `--flag` -> takes a value.
    flags: BTreeMap<String, bool>,
    required: BTreeSet<String>,
    positional: usize,
    env: BTreeSet<String>,
}

/// Reads the clap struct `struct_name` from `src/main.rs`: each field with `#[arg(long…)]`
/// is a flag (`long = "x"` or the field name in kebab case; a `bool` takes no value),
/// a field without `long` a positional argument.
fn cli_args(struct_name: &str) -> CliArgs {
    let main = read(&repo().join("src/main.rs"));
    let start = main
        .find(&format!("struct {struct_name} {{"))
        .unwrap_or_else(|| panic!("src/main.rs declares {struct_name}"));
    let body = &main[start..];
    let open = body.find('{').map(|i| i + 1).unwrap_or(0);
    let close = body.find("\n}").unwrap_or(body.len());
    let mut cli = CliArgs::default();
    let mut attr = String::new();
    let mut in_attr = false;
    for line in body[open..close].lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with("//") {
            continue;
        }
        if in_attr || t.starts_with("#[") {
            attr.push_str(t);
            attr.push(' ');
            in_attr = !t.ends_with(']');
            continue;
        }
        let Some((field, ty)) = t.trim_end_matches(',').split_once(':') else {
            continue;
        };
        let field = field.trim().trim_start_matches("pub ").trim();
        let quoted = |key: &str| {
            attr.split_once(&format!("{key} = \""))
                .and_then(|(_, rest)| rest.split('"').next())
                .map(str::to_string)
        };
        if attr.contains("long") {
            let flag = format!(
                "--{}",
                quoted("long").unwrap_or_else(|| field.replace('_', "-"))
            );
            if attr.contains("required = true") {
                cli.required.insert(flag.clone());
            }
            cli.flags.insert(flag, ty.trim() != "bool");
        } else {
            cli.positional += 1;
        }
        if let Some(env) = quoted("env") {
            cli.env.insert(env);
        }
        attr.clear();
    }
    assert!(
        !cli.flags.is_empty(),
        "{struct_name}: flags read from src/main.rs"
    );
    cli
}

#[test]
fn the_cli_reader_sees_what_src_main_rs_declares() {
    let gateway = cli_args("GatewayArgs");
    assert_eq!(gateway.positional, 0);
    assert_eq!(gateway.flags.get("--config"), Some(&true));
    let subgraph = cli_args("SubgraphArgs");
    assert_eq!(subgraph.positional, 1, "the subgraph's name");
    assert_eq!(subgraph.flags.get("--listen"), Some(&true));
    assert!(subgraph.required.contains("--trust-public-key"));
    assert!(subgraph.env.contains("PORTICO_DATABASE_URL"));
    assert_eq!(cli_args("DevArgs").flags.get("--no-seed"), Some(&false));
}

/// The files a container sees from its ConfigMap, Secret and projected volumes.
fn mounted_files(w: &Value, c: &Value) -> BTreeSet<String> {
    let volumes = seq(&pod_spec(w)["volumes"]);
    let mut files = BTreeSet::new();
    for m in seq(&c["volumeMounts"]) {
        let vol = volumes
            .iter()
            .find(|v| s(&v["name"]) == s(&m["name"]))
            .unwrap_or_else(|| panic!("{}: volume {} exists", name(w), s(&m["name"])));
        let mut sources = vec![&vol["configMap"], &vol["secret"]];
        for src in seq(&vol["projected"]["sources"]) {
            sources.extend([&src["configMap"], &src["secret"]]);
        }
        for src in sources {
            for item in seq(&src["items"]) {
                files.insert(format!("{}/{}", s(&m["mountPath"]), s(&item["path"])));
            }
        }
    }
    files
}

fn http_port(c: &Value) -> u64 {
    seq(&c["ports"])
        .iter()
        .find(|p| s(&p["name"]) == "http")
        .and_then(|p| p["containerPort"].as_u64())
        .expect("an `http` container port")
}

/// `url`'s host is a Service of the manifests exposing `url`'s port; returns the URL.
fn service_url(objects: &[Value], url: &str) -> reqwest::Url {
    let parsed = reqwest::Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    let host = parsed.host_str().unwrap_or_default();
    let port = parsed
        .port()
        .map(u64::from)
        .unwrap_or_else(|| panic!("{url} names its port"));
    let svc = find(objects, "Service", host);
    assert!(
        seq(&svc["spec"]["ports"])
            .iter()
            .any(|p| p["port"].as_u64() == Some(port)),
        "{url}: Service {host} exposes port {port}"
    );
    parsed
}

fn k8s_gateway_toml() -> String {
    read(&base_dir().join("gateway.toml"))
}

#[test]
fn the_gateway_pod_is_given_the_time_its_graceful_shutdown_takes() {
    let objects = base();
    let config = portico_gateway::GatewayConfig::from_toml(&k8s_gateway_toml())
        .expect("deploy/k8s/gateway.toml is a valid gateway config");
    let gateway = find(&objects, "Deployment", "gateway");
    // Kubernetes' default when unset.
    let period = pod_spec(gateway)["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap_or(30);
    let needed = config.shutdown.drain_delay_ms + config.shutdown.grace_ms;
    assert!(
        config.shutdown.drain_delay_ms > 0,
        "behind a Service the gateway keeps serving while its endpoint is removed"
    );
    assert!(
        period * 1000 > needed,
        "terminationGracePeriodSeconds {period} s must cover [shutdown] drain + grace ({needed} ms)"
    );
}

#[test]
fn container_arguments_are_flags_the_cli_accepts_and_name_mounted_files() {
    let objects = base();
    let config = portico_gateway::GatewayConfig::from_toml(&k8s_gateway_toml())
        .expect("deploy/k8s/gateway.toml is a valid gateway config");
    let mut checked = 0;
    for w in workloads(&objects).filter(|w| s(&container(w)["image"]) == "portico:latest") {
        let n = name(w);
        let c = container(w);
        assert!(
            c["command"].is_null(),
            "{n}: the image's entrypoint (portico) runs with `args`"
        );
        let args = strs(&c["args"]);
        let sub = args.first().map(String::as_str).unwrap_or("");
        let spec = match sub {
            "gateway" => cli_args("GatewayArgs"),
            "subgraph" => cli_args("SubgraphArgs"),
            other => panic!("{n}: unexpected subcommand {other:?}"),
        };
        assert_eq!(sub == "gateway", n == "gateway", "{n} runs `portico {sub}`");
        let mut given: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut positional = Vec::new();
        let mut rest = args.iter().skip(1);
        while let Some(a) = rest.next() {
            if !a.starts_with("--") {
                positional.push(a.clone());
                continue;
            }
            let (flag, inline) = match a.split_once('=') {
                Some((f, v)) => (f.to_string(), Some(v.to_string())),
                None => (a.clone(), None),
            };
            let takes_value = *spec
                .flags
                .get(&flag)
                .unwrap_or_else(|| panic!("{n}: `portico {sub}` has no flag {flag} (src/main.rs)"));
            let value = if takes_value {
                inline
                    .or_else(|| rest.next().cloned())
                    .filter(|v| !v.starts_with("--"))
                    .unwrap_or_else(|| panic!("{n}: {flag} needs a value"))
            } else {
                assert!(inline.is_none(), "{n}: {flag} takes no value");
                String::new()
            };
            given.entry(flag).or_default().push(value);
        }
        assert_eq!(
            positional.len(),
            spec.positional,
            "{n}: positional arguments {positional:?}"
        );
        for r in &spec.required {
            assert!(given.contains_key(r), "{n}: {r} is required");
        }
        let files = mounted_files(w, c);
        for (flag, values) in &given {
            for v in values.iter().filter(|v| v.starts_with('/')) {
                assert!(
                    files.contains(v),
                    "{n}: {flag} {v} is a mounted file (mounted: {files:?})"
                );
            }
        }
        for e in seq(&c["env"]) {
            let var = s(&e["name"]);
            if var.starts_with("PORTICO_") {
                assert!(
                    spec.env.contains(var),
                    "{n}: `portico {sub}` reads no {var}"
                );
            }
        }
        let port = http_port(c);
        if sub == "subgraph" {
            assert_eq!(positional, [n], "`portico subgraph {n}`");
            let listen: SocketAddr = given["--listen"][0]
                .parse()
                .unwrap_or_else(|e| panic!("{n}: --listen: {e}"));
            assert!(listen.ip().is_unspecified() && u64::from(listen.port()) == port);
            for url in &given["--redis-url"] {
                assert_eq!(service_url(&objects, url).host_str(), Some("redis"));
            }
            assert_eq!(
                given.contains_key("--auth-private-key"),
                n == "auth",
                "{n}: only auth has the RSA key"
            );
        } else {
            // The config names the other files the gateway reads.
            let supergraph = config
                .supergraph
                .as_ref()
                .expect("config names the supergraph");
            let key = config
                .trust
                .signing_key
                .as_ref()
                .expect("config names the trust key");
            for path in [supergraph, key] {
                let path = path.display().to_string();
                assert!(files.contains(&path), "gateway: {path} is a mounted file");
            }
            assert!(config.listen.ip().is_unspecified() && u64::from(config.listen.port()) == port);
        }
        checked += 1;
    }
    assert_eq!(
        checked, 7,
        "the gateway and six subgraphs run portico:latest"
    );
}

#[test]
fn each_subgraph_has_its_own_database_server() {
    let objects = base();
    for sg in SUBGRAPHS {
        let c = container(find(&objects, "Deployment", sg));
        let env = |c: &Value, var: &str| {
            seq(&c["env"])
                .iter()
                .find(|e| s(&e["name"]) == var)
                .map(|e| s(&e["value"]).to_string())
                .unwrap_or_else(|| panic!("{sg}: {var} is set"))
        };
        let url = service_url(&objects, &env(c, "PORTICO_DATABASE_URL"));
        assert_eq!(url.scheme(), "postgres");
        let server = format!("postgres-{sg}");
        assert_eq!(
            url.host_str(),
            Some(server.as_str()),
            "{sg}: its own server"
        );
        assert_eq!(
            url.password(),
            None,
            "{sg}: the password comes from PGPASSWORD"
        );
        let db = find(&objects, "StatefulSet", &server);
        let pg = container(db);
        assert!(s(&pg["image"]).starts_with("postgres:"));
        assert_eq!(url.path(), format!("/{}", env(pg, "POSTGRES_DB")));
        assert_eq!(url.username(), env(pg, "POSTGRES_USER"));
        assert!(
            service_selects(find(&objects, "Service", &server), pod_labels(db)),
            "Service {server} routes to StatefulSet {server}"
        );
        assert_eq!(
            seq(&db["spec"]["volumeClaimTemplates"]).len(),
            1,
            "{server} keeps its data on a volume"
        );
    }
}

#[tokio::test]
async fn the_gateway_config_routes_to_the_services_and_every_replica_shares_one_redis() {
    use portico_gateway::config::RateLimitBackend;
    let objects = base();
    let text = k8s_gateway_toml();
    let config = portico_gateway::GatewayConfig::from_toml(&text).expect("valid gateway config");
    assert!(
        !config.dev,
        "production mode: no introspection, no playground"
    );
    let compose =
        portico_gateway::GatewayConfig::from_toml(&read(&repo().join("deploy/gateway.toml")))
            .expect("deploy/gateway.toml");
    assert_eq!(
        config, compose,
        "deploy/k8s/gateway.toml and deploy/gateway.toml (compose) say the same (the Service \
         names are compose's): change both"
    );
    assert_eq!(
        config.rate_limit.backend,
        RateLimitBackend::Redis,
        "replicas share one budget per client"
    );
    let redis = config.rate_limit.redis_url.as_deref().expect("redis_url");
    assert_eq!(service_url(&objects, redis).host_str(), Some("redis"));
    let routed: BTreeSet<&str> = config.subgraphs.keys().map(String::as_str).collect();
    assert_eq!(
        routed,
        SUBGRAPHS.into(),
        "every subgraph routed to its Service"
    );
    for (n, sg) in &config.subgraphs {
        let url = service_url(&objects, sg.url.as_deref().expect("subgraph url"));
        assert_eq!((url.host_str(), url.path()), (Some(n.as_str()), "/graphql"));
    }
    let jwks = service_url(&objects, config.jwt.jwks_url.as_deref().expect("jwks_url"));
    assert_eq!(
        (jwks.host_str(), jwks.path()),
        (Some("auth"), "/.well-known/jwks.json")
    );
    let supergraph = read(&base_dir().join("supergraph.graphql"));
    assert!(
        supergraph == read(&repo().join("supergraph/supergraph.graphql")),
        "deploy/k8s/supergraph.graphql is stale: run `portico generate`"
    );
    portico_gateway::Gateway::new(
        config.clone(),
        &supergraph,
        portico_trust::TrustSigner::generate(),
    )
    .expect("the gateway accepts its Kubernetes config and supergraph");

    // The ingress overlay's environment overrides are config keys the gateway applies.
    let patch = objects_in(&[ingress_dir().join("gateway-behind-proxy.yaml")]);
    let env: Vec<(String, String)> =
        seq(&find(&patch, "Deployment", "gateway")["spec"]["template"]["spec"]["containers"])
            .iter()
            .flat_map(|c| seq(&c["env"]))
            .map(|e| (s(&e["name"]).to_string(), s(&e["value"]).to_string()))
            .filter(|(var, _)| var.starts_with("PORTICO_"))
            .collect();
    assert!(!env.is_empty(), "the overlay sets the trusted proxy header");
    for (var, value) in &env {
        let with = portico_gateway::GatewayConfig::from_toml_with_env(
            &text,
            Path::new("gateway.toml"),
            [(var.clone(), value.clone())],
        )
        .unwrap_or_else(|e| panic!("{var}: {e}"));
        assert_ne!(with, config, "{var} changes the gateway config");
    }
    let behind_proxy =
        portico_gateway::GatewayConfig::from_toml_with_env(&text, Path::new("gateway.toml"), env)
            .expect("overlay config");
    assert_eq!(
        behind_proxy.rate_limit.trusted_proxy_header.as_deref(),
        Some("x-forwarded-for")
    );
}
