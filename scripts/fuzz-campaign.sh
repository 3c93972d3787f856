#!/usr/bin/env bash
# Runs the cargo-fuzz targets for docs/FUZZING.md: each until 10 million executions or one hour,
# whichever comes first, starting from its seeds (fuzz/seeds/<target>/) in a working corpus
# (fuzz/corpus/<target>/, not committed). Prints one summary line per target:
#   <target> <date-utc> runs=<N> seconds=<S> result=<ok|crash: artifact>
# A crash leaves its input in fuzz/artifacts/<target>/: copy it into fuzz/seeds/<target>/ (the
# suite's tests/fuzz_smoke.rs then replays it forever) and fix the cause.
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a nightly toolchain (or RUSTC_BOOTSTRAP=1).
# Usage: scripts/fuzz-campaign.sh [target...]   (default: every target of fuzz/Cargo.toml)
#   FUZZ_RUNS (10000000), FUZZ_SECONDS (3600), FUZZ_TOOLCHAIN (+nightly) override the limits;
#   FUZZ_BUILD ("-O -a -s none": release, debug assertions and overflow checks on, no sanitizer)
#   sets cargo-fuzz's build flags ("-O" alone is cargo-fuzz's default AddressSanitizer build).
set -uo pipefail
cd "$(dirname "$0")/../fuzz"
runs="${FUZZ_RUNS:-10000000}"
seconds="${FUZZ_SECONDS:-3600}"
toolchain="${FUZZ_TOOLCHAIN:-+nightly}"
read -r -a build <<<"${FUZZ_BUILD:--O -a -s none}"
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  mapfile -t targets < <(cargo $toolchain fuzz list)
fi
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  cp -n "seeds/$target/"* "corpus/$target/" 2>/dev/null || true
  log="$(mktemp)"
  started="$(date -u +%Y-%m-%dT%H:%MZ)"
  cargo $toolchain fuzz run "${build[@]}" "$target" "corpus/$target" -- \
    -runs="$runs" -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1
  rc=$?
  done_line="$(grep -E '^Done [0-9]+ runs in [0-9]+ second' "$log" | tail -n 1)"
  n="$(sed -E 's/^Done ([0-9]+) runs in ([0-9]+) .*/\1/' <<<"$done_line")"
  s="$(sed -E 's/^Done ([0-9]+) runs in ([0-9]+) .*/\2/' <<<"$done_line")"
  if [ "$rc" -eq 0 ] && [ -n "$done_line" ]; then
    result=ok
  else
    n="$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -n 1)"
    s="$(grep -oE 'stat::total_run_time_s?e?c?: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -n 1)"
    result="crash: $(grep -oE 'artifacts/[^ ]+' "$log" | tail -n 1) (log kept: $log)"
  fi
  echo "$target $started build=\"${build[*]}\" runs=${n:-?} seconds=${s:-?} result=$result"
  [ "$result" = ok ] && rm -f "$log"
done
