#include "io/page_cache.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <optional>
#include <vector>

#include "io/file_reader.hpp"
#include "io/page.hpp"
#include "weightmap/error.hpp"
#include "weightmap/fault_guard.hpp"

// Linux 5.14; older libc headers lack it, older kernels answer EINVAL.
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace weightmap::io {
namespace {

int madvise_value(Advice advice) {
  switch (advice) {
    case Advice::normal: return MADV_NORMAL;
    case Advice::sequential: return MADV_SEQUENTIAL;
    case Advice::random: return MADV_RANDOM;
    case Advice::willneed: return MADV_WILLNEED;
    case Advice::dontneed: return MADV_DONTNEED;
    case Advice::hugepage: return MADV_HUGEPAGE;
  }
  return MADV_NORMAL;
}

const char* advice_name(Advice advice) {
  switch (advice) {
    case Advice::normal: return "normal";
    case Advice::sequential: return "sequential";
    case Advice::random: return "random";
    case Advice::willneed: return "willneed";
    case Advice::dontneed: return "dontneed";
    case Advice::hugepage: return "hugepage";
  }
  return "normal";
}

}  // namespace

void advise_memory(void* addr, std::size_t len, Advice advice, const std::string& path) {
  if (len == 0) return;
  const PageSpan range = whole_pages(addr, len);
  if (::madvise(range.begin, range.len, madvise_value(advice)) != 0) {
    throw Error(ErrorCode::io,
                fmt::format("madvise({}) failed: {}", advice_name(advice), std::strerror(errno)),
                {path});
  }
}

void advise_file(native_file_handle fd, std::uint64_t offset, std::uint64_t len, Advice advice,
                 const std::string& path) {
  int value = POSIX_FADV_NORMAL;
  switch (advice) {
    case Advice::normal: value = POSIX_FADV_NORMAL; break;
    case Advice::sequential: value = POSIX_FADV_SEQUENTIAL; break;
    case Advice::random: value = POSIX_FADV_RANDOM; break;
    case Advice::willneed: value = POSIX_FADV_WILLNEED; break;
    case Advice::dontneed: value = POSIX_FADV_DONTNEED; break;
    case Advice::hugepage: return;  // a mapping-only hint
  }
  // posix_fadvise returns the error number instead of setting errno.
  const int error = ::posix_fadvise(fd, static_cast<off_t>(offset), static_cast<off_t>(len), value);
  if (error != 0) {
    throw Error(
        ErrorCode::io,
        fmt::format("posix_fadvise({}) failed: {}", advice_name(advice), std::strerror(error)),
        {path, {}, offset});
  }
}

void populate_read(const void* addr, std::size_t len, const std::string& path,
                   std::uint64_t file_offset) {
  if (len == 0) return;
  const PageSpan range = whole_pages(addr, len);
  if (::madvise(range.begin, range.len, MADV_POPULATE_READ) == 0) return;
  const int error = errno;
  if (error != EINVAL && error != EFAULT && error != EIO) {
    throw Error(ErrorCode::io,
                fmt::format("madvise(MADV_POPULATE_READ) failed: {}", std::strerror(error)),
                {path, {}, file_offset});
  }
  // EINVAL: a kernel without MADV_POPULATE_READ. EFAULT or EIO: a page could not be read
  // (the file shrank under the mapping, or the disk failed); touching the pages finds which
  // one. Either way, fault each page in by reading one byte of it, guarded so that the page
  // that cannot be read becomes an Error with its offset, not SIGBUS.
  const std::size_t page = page_size();
  const std::span<const std::byte> bytes(static_cast<const std::byte*>(addr), len);
  guarded_read(bytes, FaultSite{path, {}, file_offset}, [&range, page] {
    unsigned char sink = 0;
    for (std::size_t at = 0; at < range.len; at += page) {
      sink ^=
          *static_cast<const volatile unsigned char*>(static_cast<const void*>(range.begin + at));
    }
    static_cast<void>(sink);
  });
  if (error != EINVAL) {
    // Every page read fine this time (the file grew back?): report what the kernel said.
    throw Error(ErrorCode::io,
                fmt::format("madvise(MADV_POPULATE_READ) failed: {}", std::strerror(error)),
                {path, {}, file_offset});
  }
}

void prefault_for_writing(void* addr, std::size_t len) noexcept {
  const std::size_t page = page_size();
  const auto start = reinterpret_cast<std::uintptr_t>(addr);
  const std::uintptr_t begin = (start + page - 1) / page * page;
  const std::uintptr_t end = (start + len) / page * page;
  if (len == 0 || end <= begin) return;
  auto* first = reinterpret_cast<std::byte*>(begin);
  const auto bytes = static_cast<std::size_t>(end - begin);
  // EINVAL once means a kernel without it: do not ask again for every piece.
  static std::atomic<bool> kernel_has_it{true};
  if (kernel_has_it.load(std::memory_order_relaxed)) {
    if (::madvise(first, bytes, MADV_POPULATE_WRITE) == 0) return;
    if (errno != EINVAL) return;  // ENOMEM, EFAULT, ...: the copy will meet it itself
    kernel_has_it.store(false, std::memory_order_relaxed);
  }
  for (std::size_t at = 0; at < bytes; at += page) {
    *static_cast<volatile unsigned char*>(static_cast<void*>(first + at)) = 0;
  }
}

std::vector<bool> resident_pages(const void* addr, std::size_t len, const std::string& path) {
  if (len == 0) return {};
  const PageSpan range = whole_pages(addr, len);
  std::vector<unsigned char> pages(range.len / page_size());
  if (::mincore(range.begin, range.len, pages.data()) != 0) {
    throw Error(ErrorCode::io, fmt::format("mincore failed: {}", std::strerror(errno)), {path});
  }
  std::vector<bool> resident(pages.size());
  for (std::size_t i = 0; i < pages.size(); ++i) resident[i] = (pages[i] & 1U) != 0;
  return resident;
}

std::uint64_t resident_bytes(const void* addr, std::size_t len, const std::string& path) {
  const std::vector<bool> pages = resident_pages(addr, len, path);
  return static_cast<std::uint64_t>(std::count(pages.begin(), pages.end(), true)) * page_size();
}

std::string lock_failure_sentence(int error, std::uint64_t requested, std::uint64_t limit) {
  constexpr std::uint64_t kKiB = 1024;
  const bool limit_too_small = (error == ENOMEM || error == EPERM || error == EAGAIN) &&
                               limit != RLIM_INFINITY && limit < requested;
  if (limit_too_small) {
    return fmt::format(
        "mlock of {} KiB failed: RLIMIT_MEMLOCK allows {} KiB; raise it (ulimit -l, or "
        "LimitMEMLOCK= for a service) or turn the mlock option off",
        (requested + kKiB - 1) / kKiB, limit / kKiB);
  }
  return fmt::format("mlock of {} KiB failed: {}", (requested + kKiB - 1) / kKiB,
                     std::strerror(error));
}

void lock_memory(const void* addr, std::size_t len, const std::string& path) {
  if (len == 0) return;
  const PageSpan range = whole_pages(addr, len);
  if (::mlock(range.begin, range.len) == 0) return;
  const int error = errno;
  struct rlimit limit {};
  ::getrlimit(RLIMIT_MEMLOCK, &limit);
  throw Error(ErrorCode::io, lock_failure_sentence(error, range.len, limit.rlim_cur), {path});
}

void unlock_memory(const void* addr, std::size_t len) noexcept {
  if (len == 0) return;
  const PageSpan range = whole_pages(addr, len);
  ::munlock(range.begin, range.len);
}

void write_back_and_drop(native_file_handle fd, std::uint64_t file_size, const std::string& path) {
  (void)::fdatasync(fd);  // best effort: what is still dirty afterwards merely stays cached
  advise_file(fd, 0, file_size, Advice::dontneed, path);
}

void drop_private_copies(void* addr, std::size_t len, const std::string& path,
                         std::uint64_t file_offset) {
  if (len == 0) return;
  const PageSpan range = whole_pages(addr, len);
  if (::madvise(range.begin, range.len, MADV_DONTNEED) != 0) {
    throw Error(ErrorCode::io,
                fmt::format("madvise(MADV_DONTNEED) failed: {}", std::strerror(errno)),
                {path, {}, file_offset});
  }
}

bool evict(void* addr, std::size_t len, native_file_handle fd, std::uint64_t offset,
           std::uint64_t file_len) noexcept {
  bool ok = true;
  if (addr != nullptr && len != 0) {
    const PageSpan range = whole_pages(addr, len);
    ok = ::madvise(range.begin, range.len, MADV_DONTNEED) == 0;
  }
  if (fd != invalid_file_handle) {
    ok = ::posix_fadvise(fd, static_cast<off_t>(offset), static_cast<off_t>(file_len),
                         POSIX_FADV_DONTNEED) == 0 &&
         ok;
  }
  return ok;
}

namespace {

// cachestat(2), Linux 6.5+: the page-cache state of a file range in one call. Not in glibc's
// headers on Debian 12, hence the raw syscall and the kernel's structs.
struct CachestatRange {
  std::uint64_t offset;
  std::uint64_t length;
};
struct Cachestat {
  std::uint64_t cached;
  std::uint64_t dirty;
  std::uint64_t writeback;
  std::uint64_t evicted;
  std::uint64_t recently_evicted;
};
#if defined(__x86_64__) || defined(__aarch64__)
constexpr long kCachestatSyscall = 451;  // the same number on every architecture
#else
constexpr long kCachestatSyscall = -1;
#endif

// Cached bytes of the ranges by cachestat; nullopt where the kernel lacks it.
std::optional<std::uint64_t> cachestat_bytes(native_file_handle fd,
                                             std::span<const ByteRange> ranges) {
  if (kCachestatSyscall < 0) return std::nullopt;
  const auto page = static_cast<std::uint64_t>(page_size());
  std::uint64_t cached = 0;
  for (const ByteRange& range : ranges) {
    if (range.bytes == 0) continue;
    CachestatRange asked{range.offset, range.bytes};
    Cachestat state{};
    if (::syscall(kCachestatSyscall, fd, &asked, &state, 0) != 0) return std::nullopt;
    cached += std::min(range.bytes, state.cached * page);
  }
  return cached;
}

// Without cachestat: mincore of at most kSamples pages spread over the ranges, through a
// transient mapping. mincore of every page costs about 350 ns a page on a mapping with no page
// tables yet (0.1 s per GiB): too slow for a decision at load time, and an estimate is enough.
}  // namespace

std::uint64_t sampled_mincore_bytes(native_file_handle fd, const std::string& path,
                                    std::uint64_t file_size, std::span<const ByteRange> ranges) {
  constexpr std::uint64_t kSamples = 4096;
  const auto length = static_cast<std::size_t>(file_size);
  void* base = ::mmap(nullptr, length, PROT_READ, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    throw Error(ErrorCode::io, fmt::format("cannot map the file: {}", std::strerror(errno)),
                {path});
  }
  const auto page = static_cast<std::uint64_t>(page_size());
  std::uint64_t total_pages = 0;
  for (const ByteRange& range : ranges) total_pages += (range.bytes + page - 1) / page;
  const std::uint64_t stride = std::max<std::uint64_t>(1, total_pages / kSamples);
  std::uint64_t sampled = 0;
  std::uint64_t resident = 0;
  for (const ByteRange& range : ranges) {
    const std::uint64_t first = range.offset / page;
    const std::uint64_t last = std::min(file_size, range.offset + range.bytes);
    for (std::uint64_t at = first * page; at < last; at += stride * page) {
      unsigned char state = 0;
      if (::mincore(static_cast<std::byte*>(base) + at, 1, &state) == 0) {
        ++sampled;
        if ((state & 1U) != 0) ++resident;
      }
    }
  }
  ::munmap(base, length);
  std::uint64_t bytes = 0;
  for (const ByteRange& range : ranges) bytes += range.bytes;
  return sampled == 0 ? 0
                      : static_cast<std::uint64_t>(static_cast<double>(bytes) *
                                                   static_cast<double>(resident) /
                                                   static_cast<double>(sampled));
}

std::uint64_t cached_bytes(const std::string& path, std::uint64_t file_size,
                           std::span<const ByteRange> ranges) {
  if (file_size == 0 || ranges.empty()) return 0;
  const native_file_handle fd = open_for_reading(path);
  (void)adopt_regular_file(fd, path);
  try {
    std::optional<std::uint64_t> cached = cachestat_bytes(fd, ranges);
    if (!cached) cached = sampled_mincore_bytes(fd, path, file_size, ranges);
    ::close(fd);
    return *cached;
  } catch (...) {
    ::close(fd);
    throw;
  }
}

}  // namespace weightmap::io
