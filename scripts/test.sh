#!/usr/bin/env bash
# Runs every check and test of firehose: formatting, clippy (warnings are errors), and the whole
# workspace's test suite (the service library's unit tests and loopback integration tests
# against the Twitch simulator, the fakes of firehose-sim, the binary's tests in cli/, the
# demo's in bench/, the criterion benches in test mode, the state store's tests against a real
# database). Everything listens and connects on 127.0.0.1; nothing reaches the internet.
#
# The database: unless FIREHOSE_SCYLLA_URI names one (e.g. a ScyllaDB you started with Docker),
# this starts one Apache Cassandra 5.0 node from Maven Central jars on OpenJDK 17
# (scripts/test-db.sh; jars cached in .cache/), runs every test against it, and stops it.
# On a fresh Debian/Ubuntu machine it installs OpenJDK 17 and Maven itself (apt-get) when they
# are missing, and Chromium with chromedriver for the web console's browser tests. Expects
# ../shared/corpus/ beside the repository (real recorded Twitch lines).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d ../shared/corpus ]; then
  echo "error: ../shared/corpus is missing (the recorded Twitch lines the tests replay)" >&2
  exit 1
fi

# Runs a command as root (through sudo when not root already).
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; return; fi
  command -v sudo >/dev/null || { echo "error: need root (or sudo) for: $*" >&2; exit 1; }
  sudo "$@"
}

# Installs Debian packages when a command or file they provide is missing.
install_packages() {
  command -v apt-get >/dev/null || { echo "error: $* missing and no apt-get to install them" >&2; exit 1; }
  echo "== installing $* (apt-get)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# ---- tools for tests/deploy.rs (deploy/: Prometheus rules, compose file) ------------------------
# promtool (from Debian's prometheus package: only the promtool binary is unpacked into
# .cache/deploy-tools, so no Prometheus server gets installed or started) and docker-compose
# (Debian's v1: validates the compose file without a Docker engine). tests/deploy.rs fails
# without them; it also looks in .cache/deploy-tools/bin.
if ! command -v promtool >/dev/null && [ ! -x .cache/deploy-tools/bin/promtool ]; then
  echo "== fetching promtool (Debian package prometheus)"
  command -v apt-get >/dev/null || { echo "error: promtool missing and no apt-get to fetch it" >&2; exit 1; }
  as_root apt-get update -qq
  tmp="$(mktemp -d)" && chmod 755 "$tmp"
  (cd "$tmp" && apt-get download -qq prometheus >/dev/null && dpkg-deb -x prometheus_*.deb x)
  mkdir -p .cache/deploy-tools/bin
  cp "$tmp/x/usr/bin/promtool" .cache/deploy-tools/bin/promtool
  rm -rf "$tmp"
fi
if ! command -v docker-compose >/dev/null; then
  install_packages --no-install-recommends docker-compose
fi
# ---- end of the tools for tests/deploy.rs --------------------------------------------------------

# tests/console_browser.rs drives the web console in headless Chromium through chromedriver
# (Debian's chromium and chromium-driver: /usr/bin/chromium, /usr/bin/chromedriver).
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  install_packages chromium chromium-driver
fi

needs_db=0
[ -z "${FIREHOSE_SCYLLA_URI:-}" ] && needs_db=1
if [ "$needs_db" = 1 ]; then
  # The test database (Cassandra from Maven Central) runs on OpenJDK 17 and is fetched by Maven.
  wanted=()
  [ -x "${CASSANDRA_JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-amd64}/bin/java" ] || wanted+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || wanted+=(maven)
  # tests/store_secure.rs: its node's client certificate is made with openssl.
  command -v openssl >/dev/null || wanted+=(openssl)
  if [ "${#wanted[@]}" -gt 0 ]; then
    install_packages "${wanted[@]}"
  fi
fi

echo "== cargo fmt --all --check"
cargo fmt --all -- --check
echo "== cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo build (every target of the workspace, before the database starts, so they do not compete)"
cargo test --workspace --all-targets --no-run

if [ "$needs_db" = 1 ]; then
  echo "== starting the test database (Cassandra 5.0 from Maven Central, OpenJDK 17)"
  trap './scripts/test-db.sh stop >/dev/null 2>&1 || true' EXIT
  uri="$(./scripts/test-db.sh start | grep -o 'FIREHOSE_SCYLLA_URI=[0-9A-Za-z.:_-]*' | tail -n 1)"
  [ -n "$uri" ] || { echo "error: the test database did not start" >&2; exit 1; }
  export FIREHOSE_SCYLLA_URI="${uri#FIREHOSE_SCYLLA_URI=}"
fi
echo "== cargo test --workspace (database: FIREHOSE_SCYLLA_URI=$FIREHOSE_SCYLLA_URI)"
cargo test --workspace --all-targets "$@"
