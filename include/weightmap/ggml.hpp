// The ggml adapter (library weightmap::ggml): a ggml engine creates its weight tensors in
// no_alloc contexts, says which device reads each one, and bind() gives every tensor its data:
// a pointer into the memory-mapped model file where the device can read host memory and the
// bytes fit as they are, otherwise a buffer on the tensor's buffer type filled (converted,
// quantized, uploaded) from the file. The returned Binding owns every buffer and mapping it
// made. See docs/ggml.md.
#pragma once

#include <ggml-backend.h>
#include <ggml.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "weightmap/dtype.hpp"
#include "weightmap/error.hpp"
#include "weightmap/export.hpp"
#include "weightmap/ggml_types.hpp"  // shape_of, ne_of, ggml_type_of, dtype_of
#include "weightmap/load.hpp"
#include "weightmap/model.hpp"

WEIGHTMAP_API_BEGIN
namespace weightmap::ggml {

// Where a tensor's data goes.
struct TensorDevice {
  ggml_backend_dev_t device = nullptr;  // required
  // Buffer type to allocate loaded tensors on; null: the device's default buffer type. A
  // buffer type other than the device's default (a repacking CPU type, say) is always
  // allocated and filled through ggml_backend_tensor_set, never mapped.
  ggml_backend_buffer_type_t buffer_type = nullptr;
  // Alignment of mapped tensor data this device needs; 0: each tensor's natural alignment
  // (its type's, DTypeInfo::alignment) where the CPU backend's kernels read the tensor (the
  // CPU device, and devices whose buffer type is the CPU's), the buffer type's alignment
  // (ggml_backend_buft_get_alignment) on other devices. See docs/ggml.md#alignment.
  std::size_t alignment = 0;
};

// Called once per tensor, with its name in the files.
using DeviceOf = std::function<TensorDevice(std::string_view name, const ggml_tensor& tensor)>;

// The engine's weights: its no_alloc contexts and the name in the files of every tensor in
// them. Each context's tensors that are not mapped must share one buffer type (ggml engines
// keep one context per buffer type): the adapter allocates them together.
struct EngineTensors {
  std::vector<ggml_context*> contexts;
  std::map<std::string, ggml_tensor*, std::less<>> by_name;
};

// Every tensor of `contexts` under its ggml name (ggml names are at most GGML_MAX_NAME - 1
// bytes; engines whose file names are longer fill by_name themselves).
EngineTensors tensors_of(std::vector<ggml_context*> contexts);

struct BindOptions {
  // mode, workers, staging, cache policy, progress, cancel and log, as for load().
  LoadOptions load;
  // Names that may be missing from the files: their tensors are allocated and zeroed.
  std::function<bool(std::string_view name)> optional;
};

// Per device: what bind() did for its tensors.
struct DeviceCounts {
  std::string device;  // ggml_backend_dev_name
  std::size_t mapped_tensors = 0;
  std::uint64_t mapped_bytes = 0;
  std::size_t loaded_tensors = 0;  // in buffers the adapter allocated
  std::uint64_t loaded_bytes = 0;
  std::size_t uploaded_tensors = 0;  // of those, copied into device memory (tensor_set)
};

struct BindReport {
  // The core's report over all tensors, counted as the engine sees them: a tensor whose ggml
  // data points into a file mapping is mapped; every other tensor is loaded (quantized ones
  // are converted, with reason dtype_differs).
  LoadReport load;
  std::vector<DeviceCounts> devices;  // in order of first use
  std::size_t quantized_tensors = 0;  // converted through ggml's type traits
  std::size_t host_pointer_buffers = 0;
  std::size_t allocated_buffers = 0;

  // The core's line (LoadReport::summary_line).
  std::string summary_line() const { return load.summary_line(); }
  // "on CPU: 10 mapped (1.0 MiB), 2 loaded (0.1 MiB); on RPC0[...]: 0 mapped, 3 loaded
  // (0.2 MiB, 3 uploaded)"
  std::string devices_line() const;
};

namespace detail {
struct BindingState;  // what a Binding owns; not part of the API (src/ggml/binding_state.hpp)
}  // namespace detail

// Owns what bind() made: ggml buffers (freed first) and the mappings the tensors point into.
// The engine's tensors point into these: keep the Binding alive while they are used.
class Binding {
 public:
  Binding();
  ~Binding();
  Binding(Binding&&) noexcept;
  Binding& operator=(Binding&&) noexcept;
  Binding(const Binding&) = delete;
  Binding& operator=(const Binding&) = delete;

  const BindReport& report() const noexcept;
  // The buffers bind() created (host-pointer and allocated), for a scheduler or for sizes.
  std::span<const ggml_backend_buffer_t> buffers() const noexcept;
  // The tensors bind() mapped, under the model's names: what a weightmap::Prefetcher takes to
  // bring them into the page cache ahead of the engine's first run.
  std::span<const TensorStorage> mapped_tensors() const noexcept;

 private:
  friend Binding bind(const Model&, const EngineTensors&, const DeviceOf&, const BindOptions&);
  std::unique_ptr<detail::BindingState> state_;
};

// Binds every tensor of `tensors` to the model's tensor of that name. Before anything is
// allocated the inputs are checked: every tensor of the contexts is named in by_name and has
// no data yet (no_alloc contexts), is contiguous, and device_of gives a device. The plan
// (mapped or loaded, and why) is the core's (weightmap::plan), with each tensor's type, its
// shape and its device's caps (reads host memory: CPU devices and devices that wrap host
// pointers; alignment: see TensorDevice::alignment). Types the core cannot convert into are
// quantized with ggml (an f16 file tensor into a q8_0 engine tensor). Logs the core's INFO line and
// a devices line through options.load.log.
//
// Throws weightmap::Error naming the tensor: everything plan() and load() throw;
// Error(invalid_argument) for bad inputs; Error(unsupported) for a conversion neither the core
// nor ggml can do; Error(io) when a device cannot allocate or wrap a buffer. Whatever bind
// made before the error is freed and the tensors' data is reset.
Binding bind(const Model& model, const EngineTensors& tensors, const DeviceOf& device_of,
             const BindOptions& options = {});

}  // namespace weightmap::ggml
WEIGHTMAP_API_END
