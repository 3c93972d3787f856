#!/usr/bin/env bash
# Runs every check and test of firehose: formatting, clippy (warnings are errors), and the whole
# test suite (unit tests, loopback integration tests against the built-in Twitch simulator, the
# CLI tests). Everything listens and connects on 127.0.0.1; nothing reaches the internet.
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
echo "== cargo test"
cargo test --all-targets "$@"
