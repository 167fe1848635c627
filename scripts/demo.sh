#!/usr/bin/env bash
# A tour of weightmap on a fresh Debian 12 machine: installs dependencies, builds the CLI
# (Release, no tests) in build-demo/, writes sample models into out/demo/ (two tiny ones from
# scripts/make_sample_model.py, one with a vocabulary; two 256 MiB ones from `weightmap
# sample`) and inspects them; then a 512 MiB f16 model of 1,000 tensors, loaded once with
# `weightmap load --json` and measured with `weightmap bench` (all modes, floors, ratios);
# then examples/tiny_transformer: a small ggml engine whose weights weightmap::ggml binds
# (mapped, then copied; the outputs must be bit-identical); last, a checkpoint laid out as
# Hugging Face's writer lays it out (tensors on 8-byte boundaries, rarely on 32) bound to CPU
# ggml tensors by examples/ggml_bind_bench, which prints how many tensors were mapped.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

scripts/install-deps.sh

ggml_dir=$(scripts/build-ggml.sh)
cmake -S . -B build-demo -G Ninja -DCMAKE_BUILD_TYPE=Release -DWEIGHTMAP_BUILD_TESTS=OFF \
  -DWEIGHTMAP_BUILD_BENCH=OFF -DWEIGHTMAP_GGML=ON -DWEIGHTMAP_GGML_DIR="$ggml_dir" >/dev/null
cmake --build build-demo --target weightmap_cli tiny_transformer ggml_bind_bench \
  -j "${WEIGHTMAP_JOBS:-2}" >/dev/null

out=out/demo
PYTHONPATH="$root/.deps/llama.cpp/gguf-py" /usr/bin/python3 scripts/make_sample_model.py "$out"

weightmap=build-demo/weightmap
run() {
  printf '\n$ %s\n' "$*"
  "$@"
}
run "$weightmap" sample --format safetensors --size 256M --tensors 1000 --dtype f16 \
  "$out/sample-f16.safetensors"
run "$weightmap" sample --format gguf --size 256M --tensors 1000 --dtype q8_0 "$out/sample-q8_0.gguf"
run "$weightmap" inspect "$out/sample-f16.safetensors"
run "$weightmap" inspect "$out/sample-q8_0.gguf" --metadata --filter '*.middle_block.0.*'
run "$weightmap" inspect "$out/tiny-diffusion.safetensors"
run "$weightmap" inspect "$out/tiny-diffusion.safetensors" --filter 'first_stage_model.decoder.*'
run "$weightmap" inspect "$out/tiny-llama.gguf" --metadata --filter 'blk.0.*'
run "$weightmap" inspect --prefix sd. "$out/tiny-diffusion.safetensors" --prefix llm. \
  "$out/tiny-llama.gguf" --filter '*.conv_in.*'
run "$weightmap" inspect "$out/tiny-diffusion.safetensors" --json --filter '*.decoder.conv_in.*'

# Loading: a 512 MiB f16 model, every tensor mapped, then every mode side by side.
run "$weightmap" sample --format safetensors --size 512M --tensors 1000 --dtype f16 \
  "$out/bench-f16.safetensors"
run "$weightmap" load "$out/bench-f16.safetensors" --json
run "$weightmap" bench "$out/bench-f16.safetensors" --runs 5

# A ggml engine on bound weights: mapped, then copied, outputs compared bit for bit.
run build-demo/examples/tiny_transformer "$out/tiny-transformer"

# The layout most downloaded checkpoints have: header padded to 8 bytes, tensors sorted by
# element size then name (f16 weights, f32 norms and biases, an i64 position_ids). The CPU
# needs each type's natural alignment only, so bind maps every tensor.
run "$weightmap" sample --hugging-face --size 256M --tensors 1000 --dtype f16 \
  "$out/sd-hugging-face.safetensors"
run "$weightmap" inspect "$out/sd-hugging-face.safetensors"
run build-demo/examples/ggml_bind_bench "$out/sd-hugging-face.safetensors" --runs 3
