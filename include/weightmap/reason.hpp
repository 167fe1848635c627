// Why the planner made a tensor Loaded (copied) rather than Mapped: one stable name and one
// sentence per reason, for logs, reports and JSON. See docs/loading.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "weightmap/export.hpp"

WEIGHTMAP_API_BEGIN
namespace weightmap {

// Consecutive from 0 (the C API's weightmap_reason numbers them so).
enum class Reason : std::uint8_t {
  dtype_differs,                   // converted to the requested type
  element_count_differs,           // the requested shape has another element count (an error)
  misaligned_for_device,           // its offset in the file breaks the device's alignment
  device_cannot_read_host_memory,  // the device needs its own copy
  copy_on_write_refused,           // writes in place wanted, copy-on-write mappings refused
  format_cannot_be_mapped,         // stored compressed or strided
  mapping_disabled,                // the read or direct mode, or the request gave a
                                   // destination or a sink
  risky_filesystem,                // auto mode: a network or FUSE filesystem, where mapped
                                   // reads are slow and an I/O error kills with SIGBUS
};

// "dtype_differs", ...: stable names for logs and JSON; "" for a value that is no Reason.
// A switch over every reason, so the compiler (-Wswitch) asks for the name of a new one.
constexpr std::string_view reason_name(Reason reason) noexcept {
  switch (reason) {
    case Reason::dtype_differs: return "dtype_differs";
    case Reason::element_count_differs: return "element_count_differs";
    case Reason::misaligned_for_device: return "misaligned_for_device";
    case Reason::device_cannot_read_host_memory: return "device_cannot_read_host_memory";
    case Reason::copy_on_write_refused: return "copy_on_write_refused";
    case Reason::format_cannot_be_mapped: return "format_cannot_be_mapped";
    case Reason::mapping_disabled: return "mapping_disabled";
    case Reason::risky_filesystem: return "risky_filesystem";
  }
  return "";
}

// How many reasons there are: the values from 0 that reason_name names, so it follows the
// enum (a C caller or a test lists every reason with it).
inline constexpr std::size_t kReasonCount = [] {
  std::size_t count = 0;
  while (!reason_name(static_cast<Reason>(count)).empty()) ++count;
  return count;
}();

// A sentence a user understands.
std::string_view reason_sentence(Reason reason) noexcept;

}  // namespace weightmap
WEIGHTMAP_API_END
