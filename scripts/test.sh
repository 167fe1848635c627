#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs dependencies, builds ggml (CPU + RPC backends,
# from node-llama-cpp's llama.cpp, cached in .deps/ by scripts/build-ggml.sh), then
#   1. g++, Release, warnings as errors, in build/: builds everything (the benchmark too, so it
#      keeps compiling, but does not run it) and runs ctest three times over, four tests at a
#      time (`--repeat until-fail:3`), so tests that share a file or depend on their order
#      fail here rather than now and then;
#   1b. the consumer projects in tests/consumers/ (scripts/test-consumers.sh): weightmap used
#      from outside the checkout through find_package, pkg-config and add_subdirectory;
#   2. clang++-14 with AddressSanitizer + UndefinedBehaviorSanitizer in build-asan/, runs
#      ctest again;
#   3. the libFuzzer targets (clang++-14, ASan+UBSan) in build-fuzz/, each run for a bounded
#      time (WEIGHTMAP_FUZZ_SECONDS, default 60) from its seed corpus.
# Before anything is built, scripts/check-layers.py checks that no file includes a layer above
# its own (docs/design.md).
# Exits non-zero when either build or either test run fails. Safe to run again: the build
# directories are reused.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=${WEIGHTMAP_JOBS:-2}
# A failed GGML_ASSERT in a test makes ggml start gdb on the process for a backtrace, which can
# sit for ever on a loaded machine: fail at once instead.
export GGML_NO_BACKTRACE=1

step() { printf '\n== %s (%ds)\n' "$*" "$SECONDS"; }

step "dependencies"
scripts/install-deps.sh

step "layering (scripts/check-layers.py)"
# Cheap, and a broken layer is a design error, not a build error: say so before compiling
# (after the dependencies: a fresh Debian may lack python3 until install-deps.sh).
scripts/check-layers.py

step "ggml (CPU + RPC backends) in .deps/"
# One non-sanitized ggml serves both builds: the adapter calls ggml's C API only, and the
# sanitizers check weightmap's side of every call.
ggml_dir=$(scripts/build-ggml.sh)

step "g++ Release build in build/"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=g++ \
  -DCMAKE_C_COMPILER=gcc -DWEIGHTMAP_WERROR=ON -DWEIGHTMAP_BUILD_TESTS=ON \
  -DWEIGHTMAP_BUILD_BENCH=ON -DWEIGHTMAP_SANITIZE=OFF -DWEIGHTMAP_GGML=ON \
  -DWEIGHTMAP_GGML_DIR="$ggml_dir"
cmake --build build -j "$jobs"

step "tests (g++ Release), three times over, 4 at a time"
(cd build && ctest --output-on-failure -j 4 --repeat until-fail:3)

step "consumer projects: find_package, pkg-config, add_subdirectory (tests/consumers/)"
scripts/test-consumers.sh build "$ggml_dir"

step "clang++-14 ASan+UBSan build in build-asan/"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_C_COMPILER=clang-14 -DWEIGHTMAP_WERROR=ON \
  -DWEIGHTMAP_SANITIZE=ON -DWEIGHTMAP_BUILD_TESTS=ON -DWEIGHTMAP_BUILD_BENCH=OFF \
  -DWEIGHTMAP_GGML=ON -DWEIGHTMAP_GGML_DIR="$ggml_dir"
cmake --build build-asan -j "$jobs"

step "tests (clang++-14 ASan+UBSan)"
(
  cd build-asan
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  ctest --output-on-failure -j "$jobs"
)

step "fuzzers (clang++-14 libFuzzer, ASan+UBSan)"
scripts/fuzz.sh "${WEIGHTMAP_FUZZ_SECONDS:-60}"

step "all tests passed"
