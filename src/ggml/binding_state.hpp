#pragma once

#include <vector>

#include "platform.hpp"
#include "weightmap/ggml.hpp"
#include "weightmap/load.hpp"

namespace weightmap::ggml::detail {

// What a Binding owns.
struct BindingState {
  BindingState() = default;
  WEIGHTMAP_HIDDEN ~BindingState();  // not exported: see platform.hpp
  BindingState(const BindingState&) = delete;
  BindingState& operator=(const BindingState&) = delete;

  BindReport report;
  std::vector<ggml_backend_buffer_t> buffers;  // owned; freed first
  std::vector<TensorStorage> mapped;           // keeps the mappings tensors point into alive
};

}  // namespace weightmap::ggml::detail
