#!/usr/bin/env bash
# Fetches llama.cpp's source from the npm package node-llama-cpp (its llama/gitRelease.bundle
# is a git bundle of llama.cpp) into DEST (default .deps/llama.cpp). Idempotent: does nothing
# when DEST already holds the pinned version. Never commit what it fetches.
set -euo pipefail
version=3.21.1
root=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$root/.deps/llama.cpp}
stamp=$dest/.weightmap-node-llama-cpp-version
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$version" ]; then
  exit 0
fi
command -v npm >/dev/null || { echo "fetch-llama: npm is required" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "node-llama-cpp@$version" >/dev/null)
tar -xzf "$work/node-llama-cpp-$version.tgz" -C "$work" package/llama/gitRelease.bundle
rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
git -c advice.detachedHead=false clone --quiet "$work/package/llama/gitRelease.bundle" "$dest"
echo "$version" > "$stamp"
echo "fetch-llama: llama.cpp from node-llama-cpp@$version in $dest"
