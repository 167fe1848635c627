#!/usr/bin/env bash
# Checks what a shared weightmap library exports: the public API (what include/weightmap/
# declares) and nothing of weightmap's internal namespaces, anonymous namespaces, fmt or
# simdjson. Usage: scripts/check-exports.sh LIBRARY [SYMBOL_THAT_MUST_BE_THERE...]
# Prints the number of exported symbols; exits non-zero, listing the offenders, otherwise.
set -euo pipefail
lib=$1
shift
symbols=$(nm -D --defined-only "$lib" | awk '{ print $3 }' | c++filt)
# weightmap::fault_detail is public: weightmap/fault_guard.hpp's template calls it.
internal='weightmap::(capi|detail|format|io|loader|lora|ggml::detail)::|\(anonymous namespace\)|fmt::|simdjson'
if offenders=$(grep -E "$internal" <<<"$symbols"); then
  echo "check-exports: $lib exports internal symbols:" >&2
  echo "$offenders" | head -40 >&2
  exit 1
fi
for wanted in "$@"; do
  if ! grep -qF -- "$wanted" <<<"$symbols"; then
    echo "check-exports: $lib does not export $wanted" >&2
    exit 1
  fi
done
echo "check-exports: $lib exports $(wc -l <<<"$symbols") symbols, none internal"
