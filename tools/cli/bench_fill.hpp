// The bench's "fresh buffer fill" floor: what writing N bytes into memory nobody has touched
// yet costs, page faults included. A conversion to f32 into fresh buffers can be no faster
// than filling its output; this floor says how close to that it gets.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

namespace weightmap::cli {

using FilledBuffer = std::unique_ptr<std::byte, void (*)(void*)>;

// Allocates `bytes` and writes every byte from `threads` threads (each a contiguous share).
// Without `huge_pages` the allocation is the loader's (aligned_alloc, no advice); with it, 2 MiB
// aligned and advised MADV_HUGEPAGE, as the loader's `hugepage` flag does. Returned, so the
// caller frees it outside the timing. Throws Error(io) when the memory cannot be allocated.
FilledBuffer fill_fresh_buffer(std::size_t bytes, unsigned threads, bool huge_pages);

// The mode in /sys/kernel/mm/transparent_hugepage/enabled ("always", "madvise", "never"), or
// "" when the file cannot be read (not Linux, no THP support).
std::string transparent_huge_pages_mode();

}  // namespace weightmap::cli
