// Runtime LoRAs in ggml graphs: the factors live in their own context and buffer, and each
// linear layer adds scale * up (down x) to its product. Factors are kept row-major as the core
// gives them: a row-major [a, b] matrix is ne [b, a] in ggml, which is the layout
// ggml_mul_mat(a, b) = b a^T wants for down [rank, cols] and up [rows, rank], so no transpose
// is needed at graph time. A delta on a slice of a fused weight is computed for its rows and
// added to them (ggml/lora_rows.hpp).
#include <fmt/format.h>

#include <cstring>

#include "ggml/context_allocation.hpp"
#include "ggml/lora_rows.hpp"
#include "weightmap/error.hpp"
#include "weightmap/ggml.hpp"
#include "weightmap/ggml_lora.hpp"

namespace weightmap::ggml {

struct LoraGraphWeights::State {
  ggml_context* context = nullptr;
  ggml_backend_buffer_t buffer = nullptr;
  std::map<std::string, std::vector<LoraFactors>, std::less<>> factors;

  ~State() {
    if (buffer != nullptr) ggml_backend_buffer_free(buffer);
    if (context != nullptr) ggml_free(context);
  }
};

namespace {

void check_size(const std::string& name, const char* part, std::size_t values, std::uint64_t a,
                std::uint64_t b) {
  const bool overflows = b != 0 && a > UINT64_MAX / b;
  if (overflows || values != a * b) {
    throw Error(
        ErrorCode::invalid_argument,
        fmt::format("the LoRA delta's {} factor has {} values, not the {} x {} of its shape", part,
                    values, a, b),
        {{}, printable(name)});
  }
}

void check_rows(const std::string& name, const LoraDelta& delta) {
  if (delta.row_begin > delta.base_rows || delta.rows > delta.base_rows - delta.row_begin) {
    throw Error(ErrorCode::invalid_argument,
                fmt::format("the LoRA delta adds to rows [{}, {}) of a weight with {} rows",
                            delta.row_begin, delta.row_begin + delta.rows, delta.base_rows),
                {{}, printable(name)});
  }
}

// A row-major [a, b] matrix as an f32 ggml tensor, ne [b, a].
ggml_tensor* matrix(ggml_context* context, std::uint64_t a, std::uint64_t b) {
  const std::uint64_t shape[] = {a, b};
  const auto ne = ne_of(shape);
  return ggml_new_tensor(context, GGML_TYPE_F32, 2, ne.data());
}

}  // namespace

LoraGraphWeights::LoraGraphWeights() : state_(std::make_unique<State>()) {}

LoraGraphWeights::LoraGraphWeights(const std::map<std::string, std::vector<LoraDelta>>& deltas,
                                   ggml_backend_buffer_type_t buffer_type)
    : LoraGraphWeights() {
  std::size_t tensors = 0;
  for (const auto& [name, list] : deltas) {
    for (const LoraDelta& delta : list) {
      check_rows(name, delta);
      if (delta.rank == 0) {
        check_size(name, "full", delta.full.size(), delta.rows, delta.cols);
        tensors += 1;
      } else {
        check_size(name, "down", delta.down.size(), delta.rank, delta.cols);
        check_size(name, "up", delta.up.size(), delta.rows, delta.rank);
        tensors += 2;
      }
    }
  }
  if (tensors == 0) return;
  state_->context = ggml_init({tensors * ggml_tensor_overhead(), nullptr, true});
  if (state_->context == nullptr) {
    throw Error(ErrorCode::io, "could not create a ggml context for the LoRA factors");
  }
  // Created first, filled once the buffer exists.
  std::vector<std::pair<ggml_tensor*, const std::vector<float>*>> uploads;
  for (const auto& [name, list] : deltas) {
    auto& factors = state_->factors[name];
    for (const LoraDelta& delta : list) {
      LoraFactors f;
      f.scale = delta.scale;
      f.row_begin = static_cast<std::int64_t>(delta.row_begin);
      f.base_rows = static_cast<std::int64_t>(delta.base_rows);
      if (delta.rank == 0) {
        f.full = matrix(state_->context, delta.rows, delta.cols);
        uploads.emplace_back(f.full, &delta.full);
      } else {
        f.down = matrix(state_->context, delta.rank, delta.cols);
        f.up = matrix(state_->context, delta.rows, delta.rank);
        uploads.emplace_back(f.down, &delta.down);
        uploads.emplace_back(f.up, &delta.up);
      }
      factors.push_back(f);
    }
  }
  if (buffer_type == nullptr) {
    buffer_type =
        ggml_backend_dev_buffer_type(ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU));
  }
  state_->buffer = detail::allocate_unmapped(state_->context, buffer_type);
  for (const auto& [tensor, values] : uploads) {
    ggml_backend_tensor_set(tensor, values->data(), 0, ggml_nbytes(tensor));
  }
}

LoraGraphWeights::~LoraGraphWeights() = default;
LoraGraphWeights::LoraGraphWeights(LoraGraphWeights&&) noexcept = default;
LoraGraphWeights& LoraGraphWeights::operator=(LoraGraphWeights&&) noexcept = default;

std::span<const LoraFactors> LoraGraphWeights::find(std::string_view base_tensor) const {
  if (!state_) return {};
  const auto it = state_->factors.find(base_tensor);
  if (it == state_->factors.end()) return {};
  return it->second;
}

ggml_backend_buffer_t LoraGraphWeights::buffer() const noexcept {
  return state_ ? state_->buffer : nullptr;
}

ggml_tensor* mul_mat_lora(ggml_context* ctx, ggml_tensor* w, ggml_tensor* x,
                          std::string_view base_tensor, const LoraGraphWeights& lora) {
  return detail::mul_mat_lora(ctx, w, x, base_tensor, lora, std::nullopt);
}

ggml_tensor* detail::mul_mat_lora(ggml_context* ctx, ggml_tensor* w, ggml_tensor* x,
                                  std::string_view base_tensor, const LoraGraphWeights& lora,
                                  std::optional<RowsAdd> how) {
  ggml_tensor* y = ggml_mul_mat(ctx, w, x);
  for (const LoraFactors& f : lora.find(base_tensor)) {
    const std::int64_t cols = f.full ? f.full->ne[0] : f.down->ne[0];
    const std::int64_t rows = f.full ? f.full->ne[1] : f.up->ne[1];
    if (w->ne[0] != cols || w->ne[1] != f.base_rows || w->ne[2] != 1 || w->ne[3] != 1) {
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("the LoRA factors are for a [{}, {}] matrix; the graph's weight "
                              "has ne [{}, {}, {}, {}]",
                              f.base_rows, cols, w->ne[0], w->ne[1], w->ne[2], w->ne[3]),
                  {{}, printable(base_tensor)});
    }
    ggml_tensor* delta = nullptr;
    if (f.full != nullptr) {
      delta = ggml_scale(ctx, ggml_mul_mat(ctx, f.full, x), f.scale);
    } else {
      // The scale goes on the rank-sized product, the smallest tensor on the way.
      delta = ggml_mul_mat(ctx, f.up, ggml_scale(ctx, ggml_mul_mat(ctx, f.down, x), f.scale));
    }
    if (rows == f.base_rows) {
      y = ggml_add(ctx, y, delta);
      continue;
    }
    y = add_to_rows(ctx, y, delta, f.row_begin, how.value_or(rows_add_for(y)));
  }
  return y;
}

}  // namespace weightmap::ggml
