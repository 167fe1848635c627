// Buffers that wrap mapped file ranges, so ggml tensors point straight into the page cache.
#pragma once

#include <ggml-backend.h>

#include <span>
#include <vector>

#include "ggml/device_target.hpp"
#include "weightmap/load.hpp"

namespace weightmap::ggml::detail {

// A tensor whose bytes are a view into a mapping, for a device that reads host memory.
struct MappedTensor {
  ggml_tensor* tensor = nullptr;
  const TensorStorage* storage = nullptr;  // mapped
  const DeviceTarget* target = nullptr;
};

// One buffer per (mapping, device), covering the mapped range its tensors use (from the page
// holding the first to the end of the last): ggml_backend_cpu_buffer_from_ptr for the CPU,
// ggml_backend_dev_buffer_from_host_ptr for other devices. Each tensor gets its address with
// ggml_backend_tensor_alloc. Buffers are appended to `out` as they are made, so the caller
// frees them even when a later one throws Error(io) naming the tensor.
void wrap_mapped_tensors(std::span<const MappedTensor> tensors,
                         std::vector<ggml_backend_buffer_t>& out);

}  // namespace weightmap::ggml::detail
