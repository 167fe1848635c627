// What the adapter needs to know about the device that reads a tensor.
#pragma once

#include <ggml-backend.h>

#include <string>
#include <string_view>

#include "weightmap/ggml.hpp"
#include "weightmap/load.hpp"

namespace weightmap::ggml::detail {

struct DeviceTarget {
  ggml_backend_dev_t device = nullptr;
  ggml_backend_buffer_type_t buffer_type = nullptr;
  std::string device_name;
  bool cpu = false;  // wraps mappings with ggml_backend_cpu_buffer_from_ptr
  DeviceCaps caps;   // what the planner gets
};

// Throws Error(invalid_argument) naming the tensor when there is no device.
DeviceTarget device_target(const TensorDevice& where, std::string_view tensor_name);

}  // namespace weightmap::ggml::detail
