#include "ggml/context_allocation.hpp"

#include <fmt/format.h>
#include <ggml-alloc.h>

#include <cstdint>

#include "byte_units.hpp"
#include "weightmap/error.hpp"

namespace weightmap::ggml::detail {
namespace {

const ggml_tensor* first_unallocated(ggml_context* context) {
  for (ggml_tensor* t = ggml_get_first_tensor(context); t != nullptr;
       t = ggml_get_next_tensor(context, t)) {
    if (t->data == nullptr && ggml_nbytes(t) != 0) return t;
  }
  return nullptr;
}

}  // namespace

ggml_backend_buffer_t allocate_unmapped(ggml_context* context,
                                        ggml_backend_buffer_type_t buffer_type) {
  // Measured before the call: afterwards a failed allocation may have left some tensors with
  // data and others without.
  const std::size_t needed = ggml_backend_alloc_ctx_tensors_from_buft_size(context, buffer_type);
  ggml_backend_buffer_t buffer = ggml_backend_alloc_ctx_tensors_from_buft(context, buffer_type);
  if (buffer != nullptr) {
    ggml_backend_buffer_set_usage(buffer, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
    return buffer;
  }
  const ggml_tensor* missing = first_unallocated(context);
  if (missing == nullptr) return nullptr;  // everything had data: nothing to allocate
  throw Error(ErrorCode::io,
              fmt::format("could not allocate {:.1f} MiB of {} for the tensors of its context",
                          mib(needed), ggml_backend_buft_name(buffer_type)),
              {{}, printable(ggml_get_name(missing))});
}

}  // namespace weightmap::ggml::detail
