// Fixtures of the tests of LoRA modules on slices of fused tensors (Flux's fused qkv and
// linear1): the base layout, two LoRAs whose modules patch slices, targets built by hand (as
// a name preset would give them), and the reference merge computed by
// tests/python/lora_reference_merge.py with numpy, apart from weightmap's code.
//
// The values keep every comparison provable (see within_one_ulp): base weights have
// magnitudes in [0.58, 0.9), and each LoRA adds at most 2^-5 to an element (rank r, factors in
// [-1, 1), scale 2^-5 / r), so every value before and after stays in [0.5, 1), one binade of
// f32, f16 and bf16.
#pragma once

#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "lora_fixtures.hpp"
#include "support/shell_command.hpp"
#include "weightmap/convert.hpp"
#include "weightmap/error.hpp"
#include "weightmap/lora.hpp"

namespace weightmap::lora_slice_test {

using lora_test::FloatTensor;

constexpr std::uint64_t kDim = 40;  // hidden size: q, k and v have kDim rows each
constexpr std::uint64_t kMlp = 64;  // the MLP rows of linear1, after q, k and v

// Flux's layout, small: double_blocks.N.img_attn.qkv.weight [3 d, d] and
// single_blocks.N.linear1.weight [3 d + mlp, d], with a whole tensor before them (patched as
// a whole) and one between, so tensors share pages.
// Columns are kDim (64 for q8_0: whole blocks of 32).
struct BaseShape {
  std::string name;
  std::uint64_t rows;
};
inline const std::vector<BaseShape> kBase = {
    {"double_blocks.0.img_attn.proj.weight", kDim},
    {"double_blocks.0.img_attn.qkv.weight", 3 * kDim},
    {"double_blocks.0.img_mod.lin.weight", 24},
    {"single_blocks.0.linear1.weight", 3 * kDim + kMlp},
};
inline const std::string kQkv = kBase[1].name;
inline const std::string kLinear1 = kBase[3].name;

struct SliceModule {
  std::string name;    // kohya-spelled parts: NAME.lora_up.weight, .lora_down.weight, .alpha
  std::string tensor;  // the base tensor
  std::uint64_t row_begin, row_count;
};

struct SliceLora {
  std::string file;
  std::uint64_t rank;
  float multiplier;
  DType factor_dtype;
  std::vector<SliceModule> modules;
};

// A: q, k and v of the fused qkv, the MLP part of linear1, and the whole proj.
// B: a slice of qkv that overlaps A's q, k and v ([20, 100)), k of linear1, and rows of
// img_mod.lin, which A does not patch: undoing A drops pages it shares with qkv and linear1,
// so B's rows there must go on again. No element gets more than two patches (one of each
// LoRA).
inline const SliceLora kLoraA{"a.safetensors",
                              4,
                              1.0f,
                              DType::F32,
                              {{"lora_q", kQkv, 0, kDim},
                               {"lora_k", kQkv, kDim, kDim},
                               {"lora_v", kQkv, 2 * kDim, kDim},
                               {"lora_mlp", kLinear1, 3 * kDim, kMlp},
                               {"lora_proj", kBase[0].name, 0, kDim}}};
inline const SliceLora kLoraB{"b.safetensors",
                              3,
                              0.5f,
                              DType::F16,
                              {{"lora_qkv_mid", kQkv, 20, 80},
                               {"lora_k1", kLinear1, kDim, kDim},
                               {"lora_lin_part", kBase[2].name, 8, 8}}};

// Base weights: magnitudes in [0.58, 0.9), random signs, rounded to `dtype`.
inline std::vector<float> base_values(std::uint64_t count, std::uint32_t seed, DType dtype) {
  auto values = lora_test::random_values(count, seed, 1.0f);
  for (float& v : values) {
    const float magnitude = 0.58f + 0.32f * std::abs(v);
    v = lora_test::round_to(dtype, v < 0 ? -magnitude : magnitude);
  }
  return values;
}

inline void write_base(const std::string& path, DType dtype) {
  std::vector<FloatTensor> tensors;
  std::uint32_t seed = 1;
  for (const BaseShape& shape : kBase) {
    tensors.push_back(
        {shape.name, dtype, {shape.rows, kDim}, base_values(shape.rows * kDim, seed++, dtype)});
  }
  lora_test::write_tensors(path, tensors);
}

// Factors in [-1, 1); alpha 2^-5 strength / multiplier, so scale = 2^-5 strength / rank.
inline std::shared_ptr<const LoraFile> write_lora(const std::string& dir, const SliceLora& lora,
                                                  std::uint32_t seed, std::uint64_t cols = kDim,
                                                  float strength = 1.0f) {
  std::vector<FloatTensor> tensors;
  for (const SliceModule& module : lora.modules) {
    tensors.push_back(lora_test::random_tensor(module.name + ".lora_down.weight", lora.factor_dtype,
                                               {lora.rank, cols}, seed++));
    tensors.push_back(lora_test::random_tensor(module.name + ".lora_up.weight", lora.factor_dtype,
                                               {module.row_count, lora.rank}, seed++));
    tensors.push_back(
        {module.name + ".alpha", DType::F32, {}, {0.03125f * strength / lora.multiplier}});
  }
  const std::string path = dir + "/" + lora.file;
  lora_test::write_tensors(path, tensors);
  return std::make_shared<const LoraFile>(read_lora(path));
}

// The targets a name preset would give: module -> rows of a fused tensor.
inline LoraMatch slice_match(const LoraFile& file, const SliceLora& lora, const Model& base) {
  LoraMatch match;
  for (const SliceModule& module : lora.modules) {
    std::size_t index = 0;
    while (index < file.modules.size() && file.modules[index].name != module.name) ++index;
    const TensorInfo& info = *base.find(module.tensor);
    match.targets.push_back(
        {index, module.tensor, info.shape[0], info.shape[1], module.row_begin, module.row_count});
  }
  return match;
}

// Rows of `tensor` that no module of `loras` patches.
inline std::vector<bool> untouched_rows(const std::string& tensor, std::uint64_t rows,
                                        const std::vector<const SliceLora*>& loras) {
  std::vector<bool> out(static_cast<std::size_t>(rows), true);
  for (const SliceLora* lora : loras) {
    for (const SliceModule& module : lora->modules) {
      if (module.tensor != tensor) continue;
      for (std::uint64_t r = module.row_begin; r < module.row_begin + module.row_count; ++r) {
        out[static_cast<std::size_t>(r)] = false;
      }
    }
  }
  return out;
}

// Runs the reference merge of `loras` (in order) on `base_path`; tensor -> its values.
inline std::map<std::string, std::vector<double>> reference_merge(
    const std::string& base_path, const std::string& dir, const std::string& out_name,
    const std::vector<const SliceLora*>& loras, std::uint64_t cols = kDim) {
  const std::string out = dir + "/" + out_name;
  std::filesystem::create_directories(out);
  std::vector<std::string> args = {base_path, out};
  for (const SliceLora* lora : loras) {
    args.insert(args.end(),
                {"--lora", dir + "/" + lora->file, fmt::format("{}", lora->multiplier)});
    for (const SliceModule& module : lora->modules) {
      args.insert(args.end(),
                  {"--target", module.name, module.tensor, std::to_string(module.row_begin)});
    }
  }
  if (const auto failure = test::run_python_script("lora_reference_merge.py", args)) {
    throw std::runtime_error(*failure);
  }
  std::map<std::string, std::vector<double>> values;
  for (const BaseShape& shape : kBase) {
    std::ifstream in(out + "/" + shape.name + ".f64", std::ios::binary);
    std::vector<double> v(static_cast<std::size_t>(shape.rows * cols));
    in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(v.size() * 8));
    if (!in) throw std::runtime_error("the reference wrote no values for " + shape.name);
    values[shape.name] = std::move(v);
  }
  return values;
}

// The stored bits of a float type as an integer that counts in ulps (sign-magnitude to a
// number line), so two values are |a - b| ulps apart.
inline std::int64_t ulp_index(DType dtype, float value) {
  std::uint32_t bits = 0;
  std::byte stored[4] = {};
  convert(DType::F32, std::as_bytes(std::span(&value, 1)), dtype, std::span(stored), 1);
  const std::uint64_t size = *dtype_bytes_for(dtype, 1);
  std::memcpy(&bits, stored, static_cast<std::size_t>(size));
  const std::uint32_t sign = std::uint32_t{1} << (8 * size - 1);
  const auto magnitude = static_cast<std::int64_t>(bits & (sign - 1));
  return (bits & sign) != 0 ? -magnitude : magnitude;
}

// Why one ulp (of the base type, in [0.5, 1) a fixed step u): the reference is W + the sum
// of the deltas, exact in f64 (to 2^-53), rounded once to the type. weightmap computes each
// delta in f32: the rank-r sum, the scale (itself rounded to f32) and the products each round,
// so a delta of at most 2^-5 comes out within (r + 2) 2^-24 2^-5 < 0.19 u of exact for f32
// (u = 2^-24), far less for f16 and bf16; and it rounds W + delta to the type after each
// LoRA. With at most two LoRAs on an element, what the last rounding sees is within
// 0.5 u (the first rounding) + 2 x 0.19 u < 1 u of the exact sum, and two reals less than
// one step apart, within one binade, round to values at most one step apart.
inline std::uint64_t ulps_apart(DType dtype, float value, double reference) {
  return static_cast<std::uint64_t>(
      std::abs(ulp_index(dtype, value) - ulp_index(dtype, static_cast<float>(reference))));
}

}  // namespace weightmap::lora_slice_test
