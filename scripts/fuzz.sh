#!/usr/bin/env bash
# Builds the libFuzzer targets with clang-14 (ASan+UBSan) in build-fuzz/ (or
# $WEIGHTMAP_FUZZ_BUILD_DIR) and runs each for SECONDS (default 60) on a scratch copy of its
# seed corpus. Exits non-zero on any finding.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-60}
build=${WEIGHTMAP_FUZZ_BUILD_DIR:-$root/build-fuzz}
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 -DWEIGHTMAP_FUZZ=ON \
  -DWEIGHTMAP_BUILD_TESTS=OFF -DWEIGHTMAP_BUILD_BENCH=OFF -DWEIGHTMAP_WERROR=ON >/dev/null
cmake --build "$build" --target fuzz_safetensors fuzz_gguf fuzz_zip fuzz_pickle fuzz_lora
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for target in safetensors gguf zip pickle lora; do
  mkdir -p "$work/$target"
  cp "$build/fuzz/seeds/$target/"* "$work/$target/"
  echo "fuzz: $target for ${seconds}s"
  (cd "$work" && "$build/fuzz/fuzz_$target" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 "$work/$target" 2>&1 | tail -n 4)
  # libFuzzer writes crash-*/leak-*/timeout-* files into the working directory on a finding.
  if ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-* >/dev/null 2>&1; then
    echo "fuzz: $target found a failing input" >&2
    exit 1
  fi
done
