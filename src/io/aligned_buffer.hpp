// Memory aligned beyond what operator new gives: the loader's buffers (aligned as the device
// asks) and direct-I/O staging (aligned to the device's block). The library's one aligned
// allocator, so the one place that calls aligned_alloc. Buffers are freed with the last
// handle and counted, so tests can see that a cancelled or failed load freed what it filled.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace weightmap::io {

// At least `bytes` bytes (one alignment unit when zero) aligned to `alignment` (a power of
// two). With `huge_pages`, a buffer of at least kHugePageBytes is aligned and rounded to
// that size and advised MADV_HUGEPAGE (a refusal is ignored). Throws Error(io) when memory
// runs out.
std::shared_ptr<std::byte> allocate_aligned(std::size_t bytes, std::size_t alignment,
                                            bool huge_pages = false);

// The transparent huge page size of x86-64 and most arm64 kernels.
inline constexpr std::size_t kHugePageBytes = std::size_t{2} << 20;

// Bytes in buffers from allocate_aligned that are still alive, process-wide.
std::uint64_t live_buffer_bytes() noexcept;

}  // namespace weightmap::io
