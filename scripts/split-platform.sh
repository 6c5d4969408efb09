#!/usr/bin/env bash
# The production shape on one machine, without Docker: `portico gateway` and the six
# `portico subgraph` processes, each its own process on loopback, SQLite files and keys
# in a fresh directory. Used to measure the gateway alone (its PID is printed), e.g.
# `portico-bench subscriptions --pid <gateway pid>`. Ctrl-C (or SIGTERM) stops them all.
#
#   scripts/split-platform.sh [PORTICO_BINARY] [GATEWAY_PORT]
#
# PORTICO_BINARY defaults to target/release/portico (build it with
# `cargo build --release`); GATEWAY_PORT to 4000. Subgraphs listen on 4101-4106.
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${1:-target/release/portico}"
port="${2:-4000}"
[ -x "$bin" ] || { echo "no portico binary at $bin (cargo build --release)" >&2; exit 1; }
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
dir="$(mktemp -d "${TMPDIR:-/tmp}/portico-split.XXXXXX")"
pids=()
stop() {
  [ "${#pids[@]}" -gt 0 ] && kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap stop EXIT
trap 'exit 0' INT TERM

"$bin" keys --out "$dir/keys" >/dev/null
config="$dir/gateway.toml"
{
  echo "listen = \"127.0.0.1:$port\""
  echo "supergraph = \"$PWD/supergraph/supergraph.graphql\""
  echo "[trust]"
  echo "signing_key = \"$dir/keys/gateway.pem\""
  echo "[jwt]"
  echo "jwks_url = \"http://127.0.0.1:4101/.well-known/jwks.json\""
  echo "issuer = \"portico-auth\""
  echo "audience = \"portico\""
} >"$config"
sub_port=4101
for name in auth users posts comments likes notifications; do
  args=(subgraph "$name" --listen "127.0.0.1:$sub_port"
    --database-url "sqlite://$dir/$name.db?mode=rwc"
    --trust-public-key "$dir/keys/gateway.pub.pem")
  [ "$name" = auth ] && args+=(--auth-private-key "$dir/keys/auth.pem")
  RUST_LOG=warn "$bin" "${args[@]}" >"$dir/$name.log" 2>&1 &
  pids+=($!)
  printf '[subgraphs.%s]\nurl = "http://127.0.0.1:%s/graphql"\n' "$name" "$sub_port" >>"$config"
  sub_port=$((sub_port + 1))
done
for p in 4101 4102 4103 4104 4105 4106; do
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$p/health" >/dev/null 2>&1 && break
    sleep 0.1
  done
done
RUST_LOG=warn "$bin" gateway --config "$config" >"$dir/gateway.log" 2>&1 &
gateway=$!
pids+=("$gateway")
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
echo "gateway http://127.0.0.1:$port/graphql pid $gateway (logs in $dir)"
wait "$gateway"
