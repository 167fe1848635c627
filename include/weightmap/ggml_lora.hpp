// LoRAs with ggml (library weightmap::ggml): a codec that lets LoraPatcher and
// write_merged_model patch quantized base tensors, and runtime LoRAs in ggml graphs
// (y = W x + sum scale * up (down x) on base weights nobody writes). See docs/ggml.md.
#pragma once

#include <ggml-backend.h>
#include <ggml.h>

#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "weightmap/error.hpp"
#include "weightmap/export.hpp"
#include "weightmap/lora.hpp"

WEIGHTMAP_API_BEGIN
namespace weightmap::ggml {

// For LoraApplyOptions::quantized and LoraMergeOptions::quantized: reads quantized rows with
// ggml's to_float and writes them back with ggml_quantize_chunk. Refuses, with
// Error(unsupported) naming the tensor, types that need an importance matrix (iq2_xxs,
// iq2_xs, iq1_s) and types ggml cannot read or quantize.
std::shared_ptr<const LoraQuantCodec> lora_codec();

// One LoraDelta as ggml tensors (f32), stored in the layout ggml_mul_mat takes as they are:
// a row-major [a, b] matrix is a ggml tensor with ne = [b, a].
struct LoraFactors {
  ggml_tensor* down = nullptr;  // ne [cols, rank]
  ggml_tensor* up = nullptr;    // ne [rank, rows]
  ggml_tensor* full = nullptr;  // ne [cols, rows], for a diff (down and up null)
  float scale = 0;
  // The rows of y it adds to start at row_begin, of a weight with base_rows rows (LoraDelta).
  std::int64_t row_begin = 0;
  std::int64_t base_rows = 0;
};

// The runtime LoRAs' factors, in a context and buffer of their own, uploaded once. Keep it
// alive while graphs that use its tensors run.
class LoraGraphWeights {
 public:
  LoraGraphWeights();  // no LoRA
  // `deltas` as lora_runtime_deltas gives them (it may be dropped afterwards). The factors
  // are allocated on `buffer_type` (null: the CPU's) and uploaded. Throws
  // Error(invalid_argument) naming the base tensor for a delta whose factors do not have its
  // rows x rank x cols values or whose rows [row_begin, row_begin + rows) are not within
  // base_rows, Error(io) when the buffer cannot be allocated.
  explicit LoraGraphWeights(const std::map<std::string, std::vector<LoraDelta>>& deltas,
                            ggml_backend_buffer_type_t buffer_type = nullptr);
  ~LoraGraphWeights();
  LoraGraphWeights(LoraGraphWeights&&) noexcept;
  LoraGraphWeights& operator=(LoraGraphWeights&&) noexcept;
  LoraGraphWeights(const LoraGraphWeights&) = delete;
  LoraGraphWeights& operator=(const LoraGraphWeights&) = delete;

  // The factors for a base tensor, in the order of the deltas; empty when it has none.
  std::span<const LoraFactors> find(std::string_view base_tensor) const;
  // The buffer holding every factor (null when there are none), for a scheduler or sizes.
  ggml_backend_buffer_t buffer() const noexcept;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// ggml_mul_mat(w, x) plus, for every delta of `base_tensor`, scale * up (down x) (scale *
// full x for a diff): the product a linear layer with runtime LoRAs computes. `w` is the base
// weight as a 2-D ggml tensor (ne [cols, rows]), `x` has ne[0] = cols. A delta on a slice of a
// fused weight (rows [row_begin, row_begin + rows) of base_rows) is computed for its rows
// only and added to those rows of the product (ggml_acc). A base tensor without deltas gets
// the plain ggml_mul_mat. Throws Error(invalid_argument) naming the tensor when w's shape is
// not the deltas' [base_rows, cols].
ggml_tensor* mul_mat_lora(ggml_context* ctx, ggml_tensor* w, ggml_tensor* x,
                          std::string_view base_tensor, const LoraGraphWeights& lora);

}  // namespace weightmap::ggml
WEIGHTMAP_API_END
