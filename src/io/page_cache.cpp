#include "io/page_cache.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "weightmap/error.hpp"

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

void populate_read(const void* addr, std::size_t len, const std::string& path) {
  if (len == 0) return;
  const PageRange range = whole_pages(addr, len);
  if (::madvise(range.begin, range.len, MADV_POPULATE_READ) == 0) return;
  if (errno != EINVAL) {
    throw Error(ErrorCode::io,
                fmt::format("madvise(MADV_POPULATE_READ) failed: {}", std::strerror(errno)),
                {path});
  }
  // A kernel without MADV_POPULATE_READ: fault each page in by reading one byte of it.
  const std::size_t page = page_size();
  unsigned char sink = 0;
  for (std::size_t at = 0; at < range.len; at += page) {
    sink ^= *static_cast<const volatile unsigned char*>(static_cast<const void*>(range.begin + at));
  }
  static_cast<void>(sink);
}

std::uint64_t resident_bytes(const void* addr, std::size_t len, const std::string& path) {
  if (len == 0) return 0;
  const PageRange range = whole_pages(addr, len);
  const std::size_t page = page_size();
  std::vector<unsigned char> pages(range.len / page);
  if (::mincore(range.begin, range.len, pages.data()) != 0) {
    throw Error(ErrorCode::io, fmt::format("mincore failed: {}", std::strerror(errno)), {path});
  }
  std::uint64_t resident = 0;
  for (const unsigned char state : pages) {
    if ((state & 1U) != 0) resident += page;
  }
  return resident;
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
