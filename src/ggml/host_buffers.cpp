#include "ggml/host_buffers.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <utility>

#include "byte_units.hpp"
#include "weightmap/error.hpp"
#include "weightmap/mapped_file.hpp"

namespace weightmap::ggml::detail {
namespace {

std::uintptr_t address(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

}  // namespace

void wrap_mapped_tensors(std::span<const MappedTensor> tensors,
                         std::vector<ggml_backend_buffer_t>& out) {
  using Key = std::pair<const MappedFile*, ggml_backend_dev_t>;
  std::map<Key, std::vector<const MappedTensor*>> groups;
  for (const auto& t : tensors) groups[{t.storage->mapping.get(), t.target->device}].push_back(&t);

  // Mapping bases are page-aligned, so rounding down to a page stays inside the mapping and
  // meets every alignment ggml asks of a buffer's base.
  const auto page = static_cast<std::uintptr_t>(page_size());
  for (const auto& [key, members] : groups) {
    const MappedFile& mapping = *key.first;
    const DeviceTarget& target = *members.front()->target;
    std::uintptr_t lo = UINTPTR_MAX;
    std::uintptr_t hi = 0;
    std::size_t largest = 0;
    for (const auto* m : members) {
      const auto begin = address(m->storage->bytes.data());
      const std::size_t size = ggml_backend_buft_get_alloc_size(target.buffer_type, m->tensor);
      lo = std::min(lo, begin);
      hi = std::max(hi, begin + size);
      largest = std::max(largest, size);
    }
    lo -= lo % page;
    const auto map_end = address(mapping.span(0, mapping.size()).data()) + mapping.size();
    const MappedTensor& first = *members.front();
    const ErrorContext where{mapping.path(), printable(first.storage->name), std::nullopt};
    if (hi > map_end) {
      // Only a device that pads tensors (alloc size above ggml_nbytes) gets here.
      throw Error(ErrorCode::io,
                  fmt::format("device {} needs {} bytes past the end of the mapped file",
                              target.device_name, hi - map_end),
                  where);
    }
    void* base = reinterpret_cast<void*>(lo);
    const std::size_t size = hi - lo;
    ggml_backend_buffer_t buffer =
        target.cpu ? ggml_backend_cpu_buffer_from_ptr(base, size)
                   : ggml_backend_dev_buffer_from_host_ptr(target.device, base, size, largest);
    if (buffer == nullptr) {
      throw Error(ErrorCode::io,
                  fmt::format("device {} could not wrap {:.1f} MiB of the mapped file",
                              target.device_name, mib(size)),
                  where);
    }
    out.push_back(buffer);
    ggml_backend_buffer_set_usage(buffer, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
    for (const auto* m : members) {
      // ggml's data pointer is not const; weights are only read, and a write into this
      // read-only mapping would fault rather than change the file.
      void* data = const_cast<std::byte*>(m->storage->bytes.data());
      if (ggml_backend_tensor_alloc(buffer, m->tensor, data) != GGML_STATUS_SUCCESS) {
        throw Error(
            ErrorCode::io,
            fmt::format("device {} refused a tensor in its mapped-file buffer", target.device_name),
            {mapping.path(), printable(m->storage->name), std::nullopt});
      }
    }
  }
}

}  // namespace weightmap::ggml::detail
