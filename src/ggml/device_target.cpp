#include "ggml/device_target.hpp"

#include "weightmap/error.hpp"

namespace weightmap::ggml::detail {

DeviceTarget device_target(const TensorDevice& where, std::string_view tensor_name) {
  if (where.device == nullptr) {
    throw Error(ErrorCode::invalid_argument, "the device callback gave no device",
                {{}, printable(tensor_name)});
  }
  DeviceTarget target;
  target.device = where.device;
  target.device_name = ggml_backend_dev_name(where.device);
  ggml_backend_dev_props props{};
  ggml_backend_dev_get_props(where.device, &props);
  target.cpu = props.type == GGML_BACKEND_DEVICE_TYPE_CPU;

  ggml_backend_buffer_type_t device_default = ggml_backend_dev_buffer_type(where.device);
  target.buffer_type = where.buffer_type != nullptr ? where.buffer_type : device_default;
  // A buffer type other than the device's own (a CPU repacking type, a device's pinned host
  // type) transforms or owns its memory: those tensors are always filled with tensor_set.
  const bool default_type = target.buffer_type == device_default;
  target.caps.reads_host_memory = default_type && (target.cpu || props.caps.buffer_from_host_ptr);
  // ggml's CPU kernels read weights with unaligned vector loads and scalar reads of each
  // element or block's own type, so a tensor at its type's natural alignment is enough
  // (tests/ggml/cpu_weight_alignment_test.cpp); the buffer type's 32 bytes are where ggml's
  // allocator puts tensors, not what the kernels need. Other devices' kernels are not ours to
  // prove: they keep their buffer type's alignment.
  const bool cpu_kernels_read = target.cpu || target.buffer_type == ggml_backend_cpu_buffer_type();
  if (where.alignment != 0) {
    target.caps.alignment = where.alignment;
  } else if (cpu_kernels_read) {
    target.caps.alignment = 0;  // natural, per tensor type
  } else {
    target.caps.alignment = ggml_backend_buft_get_alignment(target.buffer_type);
  }
  return target;
}

}  // namespace weightmap::ggml::detail
