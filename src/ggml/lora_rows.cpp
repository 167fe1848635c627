// Why ggml_acc first: it copies y once with the slice added, which is the memory a
// whole-weight ggml_add of a delta makes too, and up multiplies only the slice's rows.
// Padding up with zero rows instead would multiply rank x (base_rows - rows) zeros per
// column of x; padding the product costs a y-sized tensor of zeros and a second pass. Both
// passes are small beside the product itself (cols multiply-adds per element of y).
#include "ggml/lora_rows.hpp"

#include <climits>

namespace weightmap::ggml::detail {

RowsAdd rows_add_for(const ggml_tensor* y) noexcept {
  return ggml_nbytes(y) <= static_cast<std::size_t>(INT32_MAX) ? RowsAdd::acc : RowsAdd::pad;
}

ggml_tensor* add_to_rows(ggml_context* ctx, ggml_tensor* y, ggml_tensor* delta,
                         std::int64_t row_begin, RowsAdd how) {
  if (how == RowsAdd::pad) {
    const auto before = static_cast<int>(row_begin);
    const auto after = static_cast<int>(y->ne[0] - row_begin - delta->ne[0]);
    return ggml_add(ctx, y, ggml_pad_ext(ctx, delta, before, after, 0, 0, 0, 0, 0, 0));
  }
  // The view of y that delta lands in: y's strides, starting at row_begin.
  return ggml_acc(ctx, y, delta, y->nb[1], y->nb[2], y->nb[3],
                  static_cast<std::size_t>(row_begin) * y->nb[0]);
}

}  // namespace weightmap::ggml::detail
