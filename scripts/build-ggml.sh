#!/usr/bin/env bash
# Builds the ggml/ folder of llama.cpp (from the npm package node-llama-cpp, fetched by
# scripts/fetch-llama.sh into .deps/llama.cpp) with the CPU and RPC backends, static, tests and
# examples off, and installs it into .deps/ggml-install-<compiler-id>. Prints that prefix on
# stdout (everything else goes to stderr), so callers do
#   cmake ... -DWEIGHTMAP_GGML_DIR="$(scripts/build-ggml.sh)"
# A stamp records what the install was built from (llama.cpp commit, compiler, flags, CPU
# features); when it matches, the script does nothing but print the prefix.
#
# GGML_NATIVE=ON: ggml's CPU kernels are built for this machine's CPU (-march=native); without
# it x86 builds fall back to baseline SSE kernels, several times slower, which would distort
# every figure measured through ggml. The cache never leaves the machine (CI builds it on a
# clean runner of the same kind), and the stamp holds the CPU's feature flags, so a cache moved
# to another CPU is rebuilt rather than run with instructions that CPU may lack.
#
# Environment: CC, CXX (default gcc, g++), WEIGHTMAP_JOBS (default 2),
# WEIGHTMAP_LLAMA_SRC_DIR (default .deps/llama.cpp).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$root/.deps"
# Physical paths: a checkout whose .deps is a symlink to another's shares that one's cache (and
# stamp) instead of rebuilding it under a second name.
deps=$(cd "$root/.deps" && pwd -P)
src=${WEIGHTMAP_LLAMA_SRC_DIR:-$deps/llama.cpp}
cc=${CC:-gcc}
cxx=${CXX:-g++}
jobs=${WEIGHTMAP_JOBS:-2}

log() { echo "build-ggml: $*" >&2; }

if [ ! -f "$src/ggml/CMakeLists.txt" ]; then
  "$root/scripts/fetch-llama.sh" "$src" >&2
fi

cc_version=$("$cc" -dumpversion)
compiler_id="$(basename "$cc")-${cc_version%%.*}"
prefix=$deps/ggml-install-$compiler_id
build=$deps/ggml-build-$compiler_id
stamp=$prefix/.weightmap-ggml-stamp

cmake_args=(
  -G Ninja
  -DCMAKE_BUILD_TYPE=Release
  -DCMAKE_C_COMPILER="$cc"
  -DCMAKE_CXX_COMPILER="$cxx"
  -DCMAKE_POSITION_INDEPENDENT_CODE=ON
  -DBUILD_SHARED_LIBS=OFF
  -DGGML_BACKEND_DL=OFF
  -DGGML_CPU=ON
  -DGGML_RPC=ON
  -DGGML_NATIVE=ON
  # ggml's own thread pool: no libgomp/libomp to find when clang links the result.
  -DGGML_OPENMP=OFF
  -DGGML_CCACHE=OFF
  -DGGML_BUILD_TESTS=OFF
  -DGGML_BUILD_EXAMPLES=OFF
)

commit=$(git -C "$src" rev-parse HEAD)
cpu_flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | sha256sum | cut -c1-16 || true)
wanted="commit=$commit compiler=$("$cc" --version | head -1) cpu=$cpu_flags args=${cmake_args[*]}"

# One build at a time per cache: CMake configures and scripts may call this concurrently.
exec 9>"$deps/.ggml-$compiler_id.lock"
flock 9

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
  echo "$prefix"
  exit 0
fi

log "building ggml ($compiler_id, commit ${commit:0:12}) into $prefix"
start=$SECONDS
# Installed beside the old one and swapped in at the end, so builds that use the old install
# meanwhile keep working. ggml-config.cmake finds its files relative to itself: a moved
# install still works.
rm -rf "$build" "$prefix.new"
cmake -S "$root/cmake/ggml-build" -B "$build" -DWEIGHTMAP_GGML_SOURCE_DIR="$src/ggml" \
  -DCMAKE_INSTALL_PREFIX="$prefix.new" "${cmake_args[@]}" >&2
cmake --build "$build" -j "$jobs" >&2
cmake --install "$build" >&2
echo "$wanted" >"$prefix.new/.weightmap-ggml-stamp"
rm -rf "$prefix"
mv "$prefix.new" "$prefix"
log "done in $((SECONDS - start)) s"
echo "$prefix"
