// Buffers for the tensors of a context that are not mapped, on their buffer type.
#pragma once

#include <ggml-backend.h>
#include <ggml.h>

namespace weightmap::ggml::detail {

// Allocates every tensor of `context` that has no data yet on `buffer_type` with
// ggml_backend_alloc_ctx_tensors_from_buft. That function returns NULL both when it fails and
// when there was nothing to allocate (every tensor mapped or empty); this one returns nullptr
// only for the latter and throws Error(io) naming a tensor, the size and the buffer type for
// the former.
ggml_backend_buffer_t allocate_unmapped(ggml_context* context,
                                        ggml_backend_buffer_type_t buffer_type);

}  // namespace weightmap::ggml::detail
