#include "io/file_facts.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <optional>

#include "io/file_reader.hpp"
#include "io/page_cache.hpp"
#include "weightmap/error.hpp"

namespace weightmap::io {
namespace {

struct KnownFilesystem {
  std::uint64_t type;
  const char* name;
  bool risky;
};

// statfs f_type values (linux/magic.h and the filesystems' sources).
constexpr std::array kFilesystems = {
    KnownFilesystem{0xEF53, "ext4", false},  // ext2, ext3 and ext4 share it
    KnownFilesystem{0x58465342, "xfs", false},     KnownFilesystem{0x9123683E, "btrfs", false},
    KnownFilesystem{0x2FC12FC1, "zfs", false},     KnownFilesystem{0xF2F52010, "f2fs", false},
    KnownFilesystem{0x01021994, "tmpfs", false},   KnownFilesystem{0x858458F6, "ramfs", false},
    KnownFilesystem{0x794C7630, "overlay", false}, KnownFilesystem{0x73717368, "squashfs", false},
    KnownFilesystem{0x6969, "nfs", true},          KnownFilesystem{0x517B, "smb", true},
    KnownFilesystem{0xFE534D42, "smb2", true},     KnownFilesystem{0xFF534D42, "cifs", true},
    KnownFilesystem{0x65735546, "fuse", true},  // also virtiofs, sshfs, s3fs, ...
    KnownFilesystem{0x0BD00BD0, "lustre", true},   KnownFilesystem{0x00C36400, "ceph", true},
    KnownFilesystem{0x01021997, "9p", true},       KnownFilesystem{0x5346414F, "afs", true},
    KnownFilesystem{0x6B414653, "afs", true},      KnownFilesystem{0x01161970, "gfs2", true},
    KnownFilesystem{0x47504653, "gpfs", true},
};

}  // namespace

FileFacts filesystem_facts(std::uint64_t statfs_type) {
  for (const auto& known : kFilesystems) {
    if (known.type == statfs_type) return {known.name, known.risky};
  }
  return {fmt::format("unknown (0x{:x})", statfs_type), false};
}

FileFacts file_facts(const std::string& path) {
  struct statfs info {};
  if (::statfs(path.c_str(), &info) != 0) return {};
  return filesystem_facts(static_cast<std::uint64_t>(info.f_type));
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
std::optional<std::uint64_t> cachestat_bytes(int fd, std::span<const FileRange> ranges) {
  if (kCachestatSyscall < 0) return std::nullopt;
  const auto page = static_cast<std::uint64_t>(page_size());
  std::uint64_t cached = 0;
  for (const FileRange& range : ranges) {
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

std::uint64_t sampled_mincore_bytes(int fd, const std::string& path, std::uint64_t file_size,
                                    std::span<const FileRange> ranges) {
  constexpr std::uint64_t kSamples = 4096;
  const auto length = static_cast<std::size_t>(file_size);
  void* base = ::mmap(nullptr, length, PROT_READ, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    throw Error(ErrorCode::io, fmt::format("cannot map the file: {}", std::strerror(errno)),
                {path});
  }
  const auto page = static_cast<std::uint64_t>(page_size());
  std::uint64_t total_pages = 0;
  for (const FileRange& range : ranges) total_pages += (range.bytes + page - 1) / page;
  const std::uint64_t stride = std::max<std::uint64_t>(1, total_pages / kSamples);
  std::uint64_t sampled = 0;
  std::uint64_t resident = 0;
  for (const FileRange& range : ranges) {
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
  for (const FileRange& range : ranges) bytes += range.bytes;
  return sampled == 0 ? 0
                      : static_cast<std::uint64_t>(static_cast<double>(bytes) *
                                                   static_cast<double>(resident) /
                                                   static_cast<double>(sampled));
}

std::uint64_t cached_bytes(const std::string& path, std::uint64_t file_size,
                           std::span<const FileRange> ranges) {
  if (file_size == 0 || ranges.empty()) return 0;
  const int fd = open_for_reading(path);
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
