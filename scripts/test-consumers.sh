#!/usr/bin/env bash
# Builds the consumer projects in tests/consumers/ from outside the checkout, each a program
# that writes a small model, opens it, loads it and checks the values, the way an engine
# would use weightmap:
#   1. find_package(weightmap CONFIG [COMPONENTS ggml]) after `cmake --install` of BUILD_DIR
#      (a static build with the adapter, as scripts/test.sh makes in build/; nothing is
#      compiled again) into a temporary prefix, with a C99 program on the C API too;
#   2. pkg-config --cflags --libs --static weightmap against that prefix (a C++ program,
#      and a C99 program on the C API);
#   3. add_subdirectory of the checkout, adapter off (a plain static build), the program also
#      built as a shared library with the static libweightmap inside (position-independent);
#   4. add_subdirectory of the checkout with the adapter on, after add_subdirectory of ggml
#      from llama.cpp's source with ggml's default options (CPU, no RPC backend) and shared
#      libraries, as llama.cpp builds by default; the shared libweightmap and
#      libweightmap_ggml are checked to export the public API only (check-exports.sh).
# Usage: scripts/test-consumers.sh BUILD_DIR GGML_PREFIX
#   GGML_PREFIX: the ggml install BUILD_DIR was configured with (scripts/build-ggml.sh).
# Environment: CC, CXX (default gcc, g++), WEIGHTMAP_JOBS (default 2), WEIGHTMAP_LLAMA_SRC_DIR
# (default .deps/llama.cpp). Everything is written into a fresh temporary folder, removed at
# the end.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=$(cd "$1" && pwd)
ggml_prefix=$2
jobs=${WEIGHTMAP_JOBS:-2}
cc=${CC:-gcc}
cxx=${CXX:-g++}
llama=${WEIGHTMAP_LLAMA_SRC_DIR:-$root/.deps/llama.cpp}
consumers=$root/tests/consumers

work=$(mktemp -d "${TMPDIR:-/tmp}/weightmap-consumers.XXXXXX")
trap 'rm -rf "$work"' EXIT
step() { printf -- '-- consumer: %s (%ds)\n' "$*" "$SECONDS"; }
configure() {
  cmake -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER="$cc" \
    -DCMAKE_CXX_COMPILER="$cxx" "$@" >"$work/configure.log" 2>&1 ||
    { cat "$work/configure.log"; return 1; }
}
# The output goes to a log, shown on failure: ggml's own sources warn by the thousand.
build() {
  cmake --build "$1" -j "$jobs" >"$work/build.log" 2>&1 || { tail -n 200 "$work/build.log"; return 1; }
}

step "cmake --install $build_dir"
prefix=$work/prefix
cmake --install "$build_dir" --prefix "$prefix" >/dev/null

step "find_package(weightmap CONFIG COMPONENTS ggml)"
configure -S "$consumers/find_package" -B "$work/find_package" -DWITH_GGML=ON \
  -DCMAKE_PREFIX_PATH="$prefix;$ggml_prefix"
build "$work/find_package"
mkdir "$work/models"
"$work/find_package/load_model" "$work/models"
"$work/find_package/bind_model" "$work/models"
"$work/find_package/open_model" "$work/models"

step "pkg-config weightmap"
libdir=$(dirname "$(find "$prefix" -name weightmap.pc)")
flags=$(PKG_CONFIG_PATH=$libdir pkg-config --cflags --libs --static weightmap)
# shellcheck disable=SC2086 # the flags are words
"$cxx" -std=c++20 -O1 -o "$work/load_model_pc" "$consumers/programs/load_model.cpp" $flags
"$work/load_model_pc" "$work/models"
# The C API: compiled as C99 by the C compiler, linked by the C++ driver (the static
# library's C++ runtime).
cflags=$(PKG_CONFIG_PATH=$libdir pkg-config --cflags weightmap)
# shellcheck disable=SC2086 # the flags are words
"$cc" -std=c99 -Wall -Wextra -Werror -pedantic -c -o "$work/open_model_pc.o" \
  "$consumers/programs/open_model.c" $cflags
# shellcheck disable=SC2086 # the flags are words
"$cxx" -o "$work/open_model_pc" "$work/open_model_pc.o" $flags
"$work/open_model_pc" "$work/models"

step "add_subdirectory, adapter off (static)"
configure -S "$consumers/add_subdirectory" -B "$work/add_subdirectory" \
  -DWEIGHTMAP_SOURCE_DIR="$root"
build "$work/add_subdirectory"
"$work/add_subdirectory/load_model" "$work/models"
"$work/add_subdirectory/load_model_via_shared" "$work/models"

step "add_subdirectory of ggml (default options: no RPC) and weightmap, adapter on (shared)"
configure -S "$consumers/add_subdirectory" -B "$work/add_subdirectory_ggml" \
  -DWEIGHTMAP_SOURCE_DIR="$root" -DCONSUMER_GGML_SOURCE_DIR="$llama/ggml" -DBUILD_SHARED_LIBS=ON
if ! grep -q '^GGML_RPC:BOOL=OFF' "$work/add_subdirectory_ggml/CMakeCache.txt"; then
  echo "test-consumers: the engine-style ggml was configured with the RPC backend" >&2
  exit 1
fi
build "$work/add_subdirectory_ggml"
"$work/add_subdirectory_ggml/load_model" "$work/models"
"$work/add_subdirectory_ggml/bind_model" "$work/models"
lib=$work/add_subdirectory_ggml/weightmap/libweightmap.so
# Below 1.0 the soname carries MAJOR.MINOR (cmake/library.cmake).
version=$(sed -n 's/^project(weightmap VERSION \([0-9]*\.[0-9]*\).*/\1/p' "$root/CMakeLists.txt")
[ "${version%%.*}" = 0 ] || version=${version%%.*}
soname=$(readelf -d "$lib" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
if [ "$soname" != "libweightmap.so.$version" ]; then
  echo "test-consumers: soname $soname, not libweightmap.so.$version" >&2
  exit 1
fi
"$root/scripts/check-exports.sh" "$lib" 'weightmap::open_model' 'weightmap::version()' \
  'weightmap_version'
"$root/scripts/check-exports.sh" "$work/add_subdirectory_ggml/weightmap/src/ggml/libweightmap_ggml.so" \
  'weightmap::ggml::bind'

step "all consumers built and ran"
