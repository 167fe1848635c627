// Adding the product of a LoRA on a slice of a fused weight (q, k or v of a qkv) to its rows
// of the layer's product, in a ggml graph.
#pragma once

#include <ggml.h>

#include <cstdint>
#include <optional>
#include <string_view>

#include "weightmap/ggml_lora.hpp"

namespace weightmap::ggml::detail {

enum class RowsAdd {
  acc,  // ggml_acc into a copy of y: one pass over y
  pad,  // the product padded with zero rows to y's shape, then ggml_add: two passes
};

// ggml_acc keeps its strides and offset as int32, so it serves while y's bytes fit in one;
// a larger product takes the padded add.
RowsAdd rows_add_for(const ggml_tensor* y) noexcept;

// y (contiguous, f32: a ggml_mul_mat result) with `delta` (ne [rows, y->ne[1..3]]) added to its
// rows [row_begin, row_begin + rows), the others as they are.
ggml_tensor* add_to_rows(ggml_context* ctx, ggml_tensor* y, ggml_tensor* delta,
                         std::int64_t row_begin, RowsAdd how);

// mul_mat_lora with the way deltas on slices are added chosen by the caller (nullopt: by
// rows_add_for, as mul_mat_lora does), so tests cover both.
ggml_tensor* mul_mat_lora(ggml_context* ctx, ggml_tensor* w, ggml_tensor* x,
                          std::string_view base_tensor, const LoraGraphWeights& lora,
                          std::optional<RowsAdd> how);

}  // namespace weightmap::ggml::detail
