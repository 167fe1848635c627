// Reading a memory-mapped file is a plain memory access: when the file is truncated after it
// was mapped, or the disk fails under a page, the kernel answers the access with SIGBUS, whose
// default action kills the process. A guarded read turns that signal into a weightmap::Error
// (ErrorCode::io) for the one read that hit it, naming the file, the tensor and the byte.
//
// Public because engines that copy mapped weights themselves (an upload to a device, a
// repack) face the same signal; see docs/faults.md.
//
// How: the first guarded read installs one process-wide SIGBUS handler (the handler that was
// there before stays chained for every fault outside a guarded range, so an engine's or a
// sanitizer's handler still sees those). A guarded read registers its address range in
// thread-local state and runs the body; a SIGBUS inside that range on that thread jumps back
// out of the body (siglongjmp) and the guard throws. SIGSEGV is not caught: a truncated or
// failing file gives SIGBUS, and a SIGSEGV inside a mapping means a bug (a read after unmap)
// that must not be hidden.
//
// The rule for the body: a fault abandons it mid-way, so it must be a plain read, copy or
// compute loop. No objects with destructors alive across the reads, no allocation, no locks,
// nothing whose half-done state matters. The body may throw; the guard is popped either way.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <type_traits>
#include <utility>

#include "weightmap/error.hpp"
#include "weightmap/export.hpp"
#include "weightmap/mapped_file.hpp"

WEIGHTMAP_API_BEGIN
namespace weightmap {

// Where a guarded range lies, for the error. Views only (trivially destructible), so that a
// guarded read may sit inside another guarded read's body, which a fault can abandon.
struct FaultSite {
  std::string_view file;
  std::string_view tensor;   // as it came from the file: printable() is applied on error
  std::uint64_t offset = 0;  // file offset of the range's first byte
};

namespace fault_detail {

// Runs read(state) with SIGBUS inside `range` (widened to whole pages) caught. Returns nullptr
// when the body finished, else the address that faulted. Throws Error(io) if the handler
// cannot be installed, and whatever the body throws.
const std::byte* run_guarded(std::span<const std::byte> range, void (*read)(void* state),
                             void* state);

// The error for a fault at `fault` inside `range`. Says whether the file is now shorter than
// the faulting byte.
[[noreturn]] void throw_fault(std::span<const std::byte> range, const std::byte* fault,
                              const FaultSite& where);

}  // namespace fault_detail

// Runs `read()` (see the rule for the body above) while SIGBUS on `range` becomes
// Error(io). `range` is the mapped memory the body reads; `where` names the file, the tensor
// and the file offset of range.data(). The error's offset is the file offset of the faulting
// byte, clamped to the range.
template <typename Read>
void guarded_read(std::span<const std::byte> range, const FaultSite& where, Read&& read) {
  using Body = std::remove_reference_t<Read>;
  const std::byte* fault = fault_detail::run_guarded(
      range, [](void* state) { (*static_cast<Body*>(state))(); },
      const_cast<void*>(static_cast<const void*>(std::addressof(read))));
  if (fault != nullptr) fault_detail::throw_fault(range, fault, where);
}

// The same over [offset, offset+n) of `file` (bounds-checked like MappedFile::span).
template <typename Read>
void guarded_read(const MappedFile& file, std::uint64_t offset, std::uint64_t n,
                  std::string_view tensor, Read&& read) {
  guarded_read(file.span(offset, n), FaultSite{file.path(), tensor, offset},
               std::forward<Read>(read));
}

// memcpy of `n` bytes at `offset` of `file` to `destination`, guarded: the copy an engine (or
// the loader) makes from a mapping into its own buffer.
void guarded_copy(void* destination, const MappedFile& file, std::uint64_t offset, std::uint64_t n,
                  std::string_view tensor);

// The file offset of `bytes`, which must lie inside `file`'s mapping (a mapped tensor's
// TensorStorage::bytes). Throws Error(invalid_argument) when it does not.
std::uint64_t offset_in_mapping(const MappedFile& file, std::span<const std::byte> bytes);

}  // namespace weightmap
WEIGHTMAP_API_END
