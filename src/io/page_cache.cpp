#include "io/page_cache.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "weightmap/error.hpp"
#include "weightmap/fault_guard.hpp"

// Linux 5.14; older libc headers lack it, older kernels answer EINVAL.
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

namespace weightmap::io {
namespace {

struct PageRange {
  std::byte* begin;
  std::size_t len;
};

// [addr, addr+len) widened to whole pages.
PageRange whole_pages(const void* addr, std::size_t len) {
  const std::size_t page = page_size();
  const auto start = reinterpret_cast<std::uintptr_t>(addr);
  const std::uintptr_t begin = start / page * page;
  const std::uintptr_t end = (start + len + page - 1) / page * page;
  return {reinterpret_cast<std::byte*>(begin), static_cast<std::size_t>(end - begin)};
}

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

std::size_t page_size() noexcept {
  static const auto size = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return size;
}

void advise_memory(void* addr, std::size_t len, Advice advice, const std::string& path) {
  if (len == 0) return;
  const PageRange range = whole_pages(addr, len);
  if (::madvise(range.begin, range.len, madvise_value(advice)) != 0) {
    throw Error(ErrorCode::io,
                fmt::format("madvise({}) failed: {}", advice_name(advice), std::strerror(errno)),
                {path});
  }
}

void advise_file(int fd, std::uint64_t offset, std::uint64_t len, Advice advice,
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
  const PageRange range = whole_pages(addr, len);
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

std::vector<bool> resident_pages(const void* addr, std::size_t len, const std::string& path) {
  if (len == 0) return {};
  const PageRange range = whole_pages(addr, len);
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
  const PageRange range = whole_pages(addr, len);
  if (::mlock(range.begin, range.len) == 0) return;
  const int error = errno;
  struct rlimit limit {};
  ::getrlimit(RLIMIT_MEMLOCK, &limit);
  throw Error(ErrorCode::io, lock_failure_sentence(error, range.len, limit.rlim_cur), {path});
}

void unlock_memory(const void* addr, std::size_t len) noexcept {
  if (len == 0) return;
  const PageRange range = whole_pages(addr, len);
  ::munlock(range.begin, range.len);
}

bool evict(void* addr, std::size_t len, int fd, std::uint64_t offset,
           std::uint64_t file_len) noexcept {
  bool ok = true;
  if (addr != nullptr && len != 0) {
    const PageRange range = whole_pages(addr, len);
    ok = ::madvise(range.begin, range.len, MADV_DONTNEED) == 0;
  }
  if (fd >= 0) {
    ok = ::posix_fadvise(fd, static_cast<off_t>(offset), static_cast<off_t>(file_len),
                         POSIX_FADV_DONTNEED) == 0 &&
         ok;
  }
  return ok;
}

}  // namespace weightmap::io
