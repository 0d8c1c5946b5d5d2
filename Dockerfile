# syntax=docker/dockerfile:1
# The example HTTP server (examples/server.rs) as a container image: built in a Rust image,
# run as a non-root user on Debian slim (glibc, CA certificates, nothing else).
#
#   docker build -t bedrock-chat .
#   docker run --rm -p 8080:8080 bedrock-chat                # SQLite in /data, offline model
#   docker compose -f deploy/compose.yaml up --build          # with PostgreSQL and Redis
#
# Every setting is a BEDROCK_CHAT_* variable (see `server --help`); the ENV lines below are
# the image's defaults. scripts/lint-deploy runs the built server with exactly these
# variables and this HEALTHCHECK, outside Docker.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
WORKDIR /src
COPY . .
# The registry and target caches survive between builds; the binary is copied out of the
# cached target directory before the step ends.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p bedrock-chat-examples --example server \
    && install -D -m 0755 target/release/examples/server /out/bedrock-chat-server

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /data --create-home bedrock-chat
COPY --from=build /out/bedrock-chat-server /usr/local/bin/bedrock-chat-server

# The image's defaults (override any with -e or the compose file). Listening on every
# interface of the container; the SQLite file, when no other store is named, in /data.
ENV BEDROCK_CHAT_BIND=0.0.0.0:8080 \
    BEDROCK_CHAT_STORE=sqlite:bedrock-chat.db \
    BEDROCK_CHAT_LIMITER=memory \
    BEDROCK_CHAT_LOG_FORMAT=json \
    RUST_LOG=info

USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
# No curl in the image: bash's /dev/tcp asks GET /health on the port BEDROCK_CHAT_BIND names.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${BEDROCK_CHAT_BIND##*:} && printf 'GET /health HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
# SIGTERM (docker stop) drains requests in flight before exit.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/bedrock-chat-server"]
