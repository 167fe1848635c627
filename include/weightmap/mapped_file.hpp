// A whole file mapped into memory. Read-only shared mappings are the page cache itself
// (no private memory); copy-on-write mappings turn only the pages written into private
// memory, and `discard_private_pages` brings the file's bytes back.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "weightmap/error.hpp"
#include "weightmap/export.hpp"
#include "weightmap/file_identity.hpp"
#include "weightmap/native_file_handle.hpp"

WEIGHTMAP_API_BEGIN
namespace weightmap {

// Page-cache hints (madvise on the mapping; posix_fadvise on the file where one exists).
enum class Advice { normal, sequential, random, willneed, dontneed, hugepage };

enum class Access {
  read_only,      // PROT_READ, MAP_SHARED
  copy_on_write,  // PROT_READ|PROT_WRITE, MAP_PRIVATE: writes never reach the file
};

// The system's page size. A mapping starts on a page boundary and page-cache calls work on
// whole pages, so an engine that wraps mapped memory in its own buffers (a device's
// host-pointer buffer) rounds to it.
std::size_t page_size() noexcept;

class MappedFile {
 public:
  // Throws Error(io) naming the path: cannot open, not a regular file, empty file (which
  // cannot be mapped), or mmap failure with the system's reason.
  static std::shared_ptr<MappedFile> open(const std::string& path, Access access);

  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const noexcept { return path_; }
  Access access() const noexcept { return access_; }
  std::uint64_t size() const noexcept { return identity_.size; }
  // Identity at the time of mapping.
  const FileIdentity& identity() const noexcept { return identity_; }
  // True when the file on disk no longer matches identity() (replaced, resized, touched).
  bool changed_on_disk() const;

  // Bounds-checked views. Throw Error(invalid_argument) when [offset, offset+n) is not
  // inside the file. `writable_span` needs a copy-on-write mapping.
  std::span<const std::byte> span(std::uint64_t offset, std::uint64_t n) const;
  std::span<std::byte> writable_span(std::uint64_t offset, std::uint64_t n);

  // Drops private (written) pages that overlap [offset, offset+n) of a copy-on-write
  // mapping, so the next read sees the file again. Pages are whole: the range is widened
  // to page boundaries, so callers must re-apply writes that shared those pages.
  void discard_private_pages(std::uint64_t offset, std::uint64_t n);

  // Page-cache policy on [offset, offset+n) (checked like span()). Throw Error(io) naming the
  // path when the kernel refuses.
  void advise(Advice advice, std::uint64_t offset, std::uint64_t n);
  // Prefault for reading only: MADV_POPULATE_READ, or a read of each page on kernels without
  // it. A copy-on-write mapping stays shared (MAP_POPULATE would copy the whole file).
  void populate_read(std::uint64_t offset, std::uint64_t n);
  // mlock; the error says when RLIMIT_MEMLOCK is too small and how to raise it.
  void lock(std::uint64_t offset, std::uint64_t n);
  void unlock(std::uint64_t offset, std::uint64_t n) noexcept;
  // Bytes of the range (in whole pages) that are in memory now (mincore).
  std::uint64_t resident_bytes(std::uint64_t offset, std::uint64_t n) const;
  // Drops the whole file from this mapping (MADV_DONTNEED) and from the page cache
  // (POSIX_FADV_DONTNEED). Written pages of a copy-on-write mapping are discarded too.
  // Best effort, for release paths: false when the kernel refused.
  bool evict() noexcept;

 private:
  MappedFile() = default;
  void check_range(std::uint64_t offset, std::uint64_t n) const;

  std::string path_;
  Access access_ = Access::read_only;
  FileIdentity identity_;
  std::byte* base_ = nullptr;
  native_file_handle file_ = invalid_file_handle;  // kept open for hints and eviction
};

}  // namespace weightmap
WEIGHTMAP_API_END
