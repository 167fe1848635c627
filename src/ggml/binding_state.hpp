#pragma once

#include <vector>

#include "weightmap/ggml.hpp"
#include "weightmap/load.hpp"

namespace weightmap::ggml {

struct Binding::State {
  State() = default;
  ~State();
  State(const State&) = delete;
  State& operator=(const State&) = delete;

  BindReport report;
  std::vector<ggml_backend_buffer_t> buffers;  // owned; freed first
  std::vector<TensorStorage> mapped;           // keeps the mappings tensors point into alive
};

}  // namespace weightmap::ggml
