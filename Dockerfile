# firehose: multi-stage build. The runtime image holds only the binary and its config, and runs
# as an unprivileged user. Configuration is read from /etc/firehose/firehose.toml; secrets come
# from the environment (FIREHOSE_TWITCH_TOKEN, FIREHOSE_ADMIN_TOKEN) or from files mounted under
# /run/secrets and named in the config (twitch.token_file, http.admin_token_file).
#
# The workspace: the service library (Cargo.toml, src/), the tooling crates it is tested with
# (sim/, bench/) and the package of the `firehose` binary (cli/). Cargo reads every member's
# manifest, so all of them are copied; only the binary's package is built.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY tests ./tests
COPY sim ./sim
COPY bench ./bench
COPY cli ./cli
COPY config ./config
RUN cargo build --release --locked -p firehose-cli --bin firehose

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin firehose \
    && mkdir -p /var/lib/firehose && chown firehose:firehose /var/lib/firehose
COPY --from=build /src/target/release/firehose /usr/local/bin/firehose
COPY config/firehose.toml /etc/firehose/firehose.toml
# Inside a container the endpoints must listen beyond loopback: everything (/healthz, /readyz,
# /metrics, the admin API /v1/..., /oauth/callback, /eventsub) on 0.0.0.0:8080. To keep the admin
# API and /metrics off that address, set FIREHOSE_HTTP_ADMIN_LISTEN (e.g. 0.0.0.0:9090, published
# only to the operators' network): 8080 then serves /healthz, /readyz, /oauth/callback and
# /eventsub only. State: the embedded store in a volume, unless FIREHOSE_STORE_SCYLLA_URI names a
# ScyllaDB cluster.
ENV FIREHOSE_HTTP_LISTEN=0.0.0.0:8080 \
    FIREHOSE_STORE_EMBEDDED_PATH=/var/lib/firehose/state.redb
VOLUME /var/lib/firehose
USER firehose:firehose
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/firehose"]
CMD ["run", "--config", "/etc/firehose/firehose.toml"]
