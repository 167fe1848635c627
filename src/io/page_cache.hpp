// The page-cache calls, on a range of a mapping or of an open file: the hints behind
// CachePolicy, prefaulting, residency (mincore, cachestat), locking, eviction and dropping a
// copy-on-write mapping's private pages. Every madvise, posix_fadvise, mincore, cachestat and
// mlock call of the library is in page_cache_linux.cpp, with its fallbacks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "io/page.hpp"
#include "weightmap/mapped_file.hpp"
#include "weightmap/native_file_handle.hpp"

namespace weightmap::io {

using weightmap::Advice;

// madvise on [addr, addr+len), widened to whole pages. Throws Error(io) naming `path`.
void advise_memory(void* addr, std::size_t len, Advice advice, const std::string& path);
// posix_fadvise on [offset, offset+len) of `file` (hugepage has no file counterpart: ignored).
void advise_file(native_file_handle file, std::uint64_t offset, std::uint64_t len, Advice advice,
                 const std::string& path);

// Prefaults a range for reading only: MADV_POPULATE_READ where the kernel has it (EINVAL on
// older kernels), otherwise reads one byte per page. Never makes private copies of a
// copy-on-write mapping, unlike MAP_POPULATE. A page that cannot be read (the file shrank
// under the mapping, or an I/O error) is found by touching the pages under a fault guard and
// thrown as Error(io) naming `path` and its file offset (`file_offset` is that of `addr`),
// never SIGBUS.
void populate_read(const void* addr, std::size_t len, const std::string& path,
                   std::uint64_t file_offset);

// Faults in, for writing, the pages wholly inside [addr, addr+len) of a buffer just
// allocated, before a copy writes them: MADV_POPULATE_WRITE (Linux 5.14+) takes the kernel's
// page faults in one call, cheaper than one trap per 4 KiB page as a read into the buffer
// would take them (0.48-0.54 s per GiB against 0.6-1.4 s on our VM). Where the kernel lacks
// it, writes a zero byte per page, so only for memory whose contents do not matter yet.
// Pages the range only partly covers are left alone: a neighbour may be writing them. Best
// effort: on any failure the copy takes the faults itself.
void prefault_for_writing(void* addr, std::size_t len) noexcept;

// Bytes of [addr, addr+len) (whole pages) whose pages are in memory, by mincore.
std::uint64_t resident_bytes(const void* addr, std::size_t len, const std::string& path);
// The same per page: entry i tells whether the i-th page of [addr, addr+len) (widened to
// whole pages) is in memory. For callers that split a file's residency among its tensors.
std::vector<bool> resident_pages(const void* addr, std::size_t len, const std::string& path);

// mlock; on failure throws Error(io) saying how much was asked, what RLIMIT_MEMLOCK allows,
// and how to raise it.
void lock_memory(const void* addr, std::size_t len, const std::string& path);
// The sentence lock_memory throws, for a given errno, request and soft limit (testable
// without a small limit, which root does not have).
std::string lock_failure_sentence(int error, std::uint64_t requested, std::uint64_t limit);
void unlock_memory(const void* addr, std::size_t len) noexcept;

// MADV_DONTNEED on [addr, addr+len) (whole pages) of a copy-on-write mapping: drops its
// private copies, so the next read sees the file again (the undo of patched pages). Throws
// Error(io) naming `path` and `file_offset` (that of `addr`).
void drop_private_copies(void* addr, std::size_t len, const std::string& path,
                         std::uint64_t file_offset);

// MADV_DONTNEED on the range, then POSIX_FADV_DONTNEED on the file: madvise alone unmaps
// but leaves the page cache full. Best effort (for destructors): returns false on failure.
bool evict(void* addr, std::size_t len, native_file_handle file, std::uint64_t offset,
           std::uint64_t file_len) noexcept;

// Writes the file's dirty pages back (fdatasync: the kernel drops only clean pages), then
// POSIX_FADV_DONTNEED on all of it. Pages another process has mapped stay. Throws Error(io)
// naming `path` when the kernel refuses the advice.
void write_back_and_drop(native_file_handle file, std::uint64_t file_size, const std::string& path);

// Bytes of the ranges that are in the page cache (no page is read): cachestat(2) where the
// kernel has it (6.5+), else an estimate from mincore of up to 4096 pages spread over the
// ranges. Throws Error(io) naming `path`.
std::uint64_t cached_bytes(const std::string& path, std::uint64_t file_size,
                           std::span<const ByteRange> ranges);

// The estimate cached_bytes falls back on without cachestat (public for its test).
std::uint64_t sampled_mincore_bytes(native_file_handle file, const std::string& path,
                                    std::uint64_t file_size, std::span<const ByteRange> ranges);

}  // namespace weightmap::io
