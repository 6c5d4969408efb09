# syntax=docker/dockerfile:1
# Multi-stage build of the single `portico` binary used by every service in compose.yml.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin portico && cp target/release/portico /usr/local/bin/portico

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 portico
COPY --from=build /usr/local/bin/portico /usr/local/bin/portico
USER portico
ENTRYPOINT ["/usr/local/bin/portico"]
