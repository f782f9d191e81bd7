#!/usr/bin/env bash
# `make fuzz`: the coverage-guided fuzz targets (cargo fuzz, libFuzzer, no sanitizer: only the
# stable toolchain is here, and safe Rust needs none to find panics) for FUZZ_SECONDS (600) each,
# both at once, from the seeds in fuzz/seeds/ plus the corpus kept in ~/.cache/xos/fuzz-corpus.
# Prints executions and coverage per target; a crash fails the run and leaves its input in
# fuzz/artifacts/<target>/ (fix it, then keep it as a regression case in the unit tests).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_EACH=${FUZZ_SECONDS:-600}
TARGET_DIR=${FUZZ_TARGET_DIR:-$HOME/.cache/xos/fuzz-target}
CORPUS=${FUZZ_CORPUS:-$HOME/.cache/xos/fuzz-corpus}
TARGETS=(tosca_parse model_json)
cargo fuzz build -s none --target-dir "$TARGET_DIR"
pids=()
for t in "${TARGETS[@]}"; do
  mkdir -p "$CORPUS/$t"
  cargo fuzz run -s none --target-dir "$TARGET_DIR" "$t" "$CORPUS/$t" "seeds/$t" -- \
    -max_total_time="$SECONDS_EACH" -print_final_stats=1 -max_len=8192 -timeout=10 \
    > "$CORPUS/$t.log" 2>&1 &
  pids+=($!)
done
status=0
for i in "${!TARGETS[@]}"; do
  wait "${pids[$i]}" || status=1
done
for t in "${TARGETS[@]}"; do
  log="$CORPUS/$t.log"
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  last=$(grep -E '#[0-9]+.*cov:' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' <<<"$last" | grep -o '[0-9]*' || echo "?")
  ft=$(grep -o 'ft: [0-9]*' <<<"$last" | grep -o '[0-9]*' || echo "?")
  units=$(ls "$CORPUS/$t" | wc -l)
  echo "fuzz $t: ${SECONDS_EACH}s, $execs executions, coverage $cov edges ($ft features), corpus $units inputs"
  if grep -qE 'panicked|ERROR: libFuzzer|SUMMARY: libFuzzer' "$log"; then
    echo "fuzz $t: CRASH; see $log and fuzz/artifacts/$t/"
    grep -E 'panicked|Test unit written' "$log" | head -5
    status=1
  fi
done
exit $status
