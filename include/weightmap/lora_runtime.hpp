// LoRAs at runtime: per base tensor, the (down, up, scale) lists an engine adds to its matrix
// products, the base weights untouched. See docs/lora.md.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "weightmap/error.hpp"
#include "weightmap/export.hpp"
#include "weightmap/lora_use.hpp"

WEIGHTMAP_API_BEGIN
namespace weightmap {

// What an engine adds to y = W x for one base tensor, W seen as a [base_rows, cols] matrix:
//   y[row_begin + i] += scale * (up (down x))[i]   for i in [0, rows)
// (for a diff, `full` holds the [rows, cols] difference instead: rank 0, up and down empty,
// y[row_begin + i] += scale * (full x)[i]). A module on the whole tensor has row_begin 0 and
// rows = base_rows; one on a slice of a fused tensor (q, k or v of a fused qkv, the MLP part
// of Flux's linear1) adds to those rows of y only. Factors are f32, row-major; a LoCon mid
// factor is folded into `down`.
struct LoraDelta {
  std::uint64_t rows = 0;  // rows of y the delta adds to (up's rows)
  std::uint64_t cols = 0;
  std::uint64_t rank = 0;
  std::vector<float> down;  // [rank, cols]
  std::vector<float> up;    // [rows, rank]
  std::vector<float> full;  // [rows, cols], diffs only
  float scale = 0;
  std::uint64_t row_begin = 0;  // the first of them
  std::uint64_t base_rows = 0;  // rows of W; row_begin + rows <= base_rows
};

// Per base tensor, its deltas in `uses` order. The base weights are not touched (a read-only
// mapping serves). Throws Error(invalid_argument) naming the tensor and the LoRA file for a
// target whose rows are out of range or do not fit its module's factors (checked for every
// target before any factor is read), and what reading the LoRA files throws.
std::map<std::string, std::vector<LoraDelta>> lora_runtime_deltas(std::span<const LoraUse> uses);

}  // namespace weightmap
WEIGHTMAP_API_END
