#!/usr/bin/env bash
# Runs every check and test of firehose: formatting, clippy (warnings are errors), and the whole
# test suite (unit tests, loopback integration tests against the built-in Twitch simulator, the
# CLI tests, the state store's tests against a real database). Everything listens and connects
# on 127.0.0.1; nothing reaches the internet.
#
# The database: unless FIREHOSE_SCYLLA_URI names one (e.g. a ScyllaDB you started with Docker),
# this starts one Apache Cassandra 5.0 node from Maven Central jars on OpenJDK 17
# (scripts/test-db.sh; jars cached in .cache/), runs every test against it, and stops it.
# Expects ../shared/corpus/ beside the repository (real recorded Twitch lines used by tests).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d ../shared/corpus ]; then
  echo "error: ../shared/corpus is missing (the recorded Twitch lines the tests replay)" >&2
  exit 1
fi

# ---- tools for tests/deploy.rs (deploy/: Prometheus rules, compose file) ------------------------
# promtool (from Debian's prometheus package: only the promtool binary is unpacked into
# .cache/deploy-tools, so no Prometheus server gets installed or started) and docker-compose
# (Debian's v1: validates the compose file without a Docker engine). tests/deploy.rs fails
# without them; it also looks in .cache/deploy-tools/bin.
if ! command -v promtool >/dev/null && [ ! -x .cache/deploy-tools/bin/promtool ]; then
  echo "== fetching promtool (Debian package prometheus)"
  apt-get update -qq
  tmp="$(mktemp -d)" && chmod 755 "$tmp"
  (cd "$tmp" && apt-get download -qq prometheus >/dev/null && dpkg-deb -x prometheus_*.deb x)
  mkdir -p .cache/deploy-tools/bin
  cp "$tmp/x/usr/bin/promtool" .cache/deploy-tools/bin/promtool
  rm -rf "$tmp"
fi
if ! command -v docker-compose >/dev/null; then
  echo "== installing docker-compose (Debian package, to validate deploy/compose.yaml)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
fi
# ---- end of the tools for tests/deploy.rs --------------------------------------------------------

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
echo "== cargo build --all-targets (before the database starts, so they do not compete)"
cargo test --all-targets --no-run

if [ -z "${FIREHOSE_SCYLLA_URI:-}" ]; then
  echo "== starting the test database (Cassandra 5.0 from Maven Central, OpenJDK 17)"
  trap './scripts/test-db.sh stop >/dev/null 2>&1 || true' EXIT
  uri="$(./scripts/test-db.sh start | grep -o 'FIREHOSE_SCYLLA_URI=[0-9A-Za-z.:_-]*' | tail -n 1)"
  [ -n "$uri" ] || { echo "error: the test database did not start" >&2; exit 1; }
  export FIREHOSE_SCYLLA_URI="${uri#FIREHOSE_SCYLLA_URI=}"
fi
echo "== cargo test (database: FIREHOSE_SCYLLA_URI=$FIREHOSE_SCYLLA_URI)"
cargo test --all-targets "$@"
