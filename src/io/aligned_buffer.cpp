#include "io/aligned_buffer.hpp"

#include <fmt/format.h>

#include <atomic>
#include <cstdlib>

#include "io/page_cache.hpp"
#include "weightmap/error.hpp"

namespace weightmap::io {
namespace {

std::atomic<std::uint64_t> g_live_bytes{0};

}  // namespace

std::shared_ptr<std::byte> allocate_aligned(std::size_t bytes, std::size_t alignment,
                                            bool huge_pages) {
  // A fresh buffer is faulted in as it is written: one fault per 4 KiB page costs ~1.4 us
  // on our VMs (0.36 s per GiB), against 0.05 s per GiB in 2 MiB pages when the kernel has
  // them free. Opt-in: where it must compact memory to find them, a fault can stall.
  huge_pages = huge_pages && bytes >= kHugePageBytes;
  if (huge_pages) alignment = std::max(alignment, kHugePageBytes);
  alignment = std::max(alignment, alignof(std::max_align_t));
  // aligned_alloc wants a size that is a multiple of the alignment.
  const std::size_t rounded =
      bytes == 0 ? alignment : (bytes + alignment - 1) / alignment * alignment;
  if (rounded < bytes) {
    throw Error(ErrorCode::io, fmt::format("cannot allocate {} bytes", bytes));
  }
  void* memory = std::aligned_alloc(alignment, rounded);
  if (memory == nullptr) {
    throw Error(ErrorCode::io, fmt::format("out of memory allocating {} bytes", rounded));
  }
  if (huge_pages) {
    try {
      advise_memory(memory, rounded, Advice::hugepage, "a staging buffer");
    } catch (const Error&) {
      // A hint: without huge pages the buffer works the same, only faults in more slowly.
    }
  }
  g_live_bytes += rounded;
  // On failure to allocate its control block, shared_ptr calls the deleter itself.
  return std::shared_ptr<std::byte>(static_cast<std::byte*>(memory), [rounded](std::byte* p) {
    std::free(p);
    g_live_bytes -= rounded;
  });
}

std::uint64_t live_buffer_bytes() noexcept { return g_live_bytes.load(); }

}  // namespace weightmap::io
