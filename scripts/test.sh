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
