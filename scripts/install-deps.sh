#!/usr/bin/env bash
# Installs what weightmap needs on Debian 12 (compilers, libraries, Python with numpy, npm for
# scripts/fetch-llama.sh) and fetches llama.cpp's source into .deps/. Idempotent: when every
# package is installed already it skips apt entirely.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

packages=(
  build-essential cmake ninja-build g++ clang-14 libclang-rt-14-dev
  libsimdjson-dev libcli11-dev libfmt-dev libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-numpy python3-torch python3-torchvision nodejs npm git ca-certificates
)

missing=()
for package in "${packages[@]}"; do
  # NodeSource's nodejs package ships npm and conflicts with Debian's npm package.
  if [ "$package" = npm ] && command -v npm >/dev/null; then continue; fi
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$package")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -q
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

"$root/scripts/fetch-llama.sh"
