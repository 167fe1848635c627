#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "io/file_reader.hpp"
#include "io/page.hpp"
#include "io/page_cache.hpp"
#include "weightmap/error.hpp"
#include "weightmap/mapped_file.hpp"

namespace weightmap {
namespace {

// Closes the descriptor when open() fails; a mapping made keeps it for its page-cache calls.
struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path, Access access) {
  const int fd = io::open_for_reading(path);
  const FileIdentity identity = io::adopt_regular_file(fd, path);
  FdCloser closer{fd};
  if (identity.size == 0) {
    throw Error(ErrorCode::io, "the file is empty; an empty file cannot be mapped", {path});
  }
  if (identity.size > static_cast<std::uint64_t>(SIZE_MAX)) {
    throw Error(ErrorCode::io, "the file is larger than the address space", {path});
  }
  const int prot = access == Access::read_only ? PROT_READ : PROT_READ | PROT_WRITE;
  const int flags = access == Access::read_only ? MAP_SHARED : MAP_PRIVATE;
  void* base = ::mmap(nullptr, static_cast<std::size_t>(identity.size), prot, flags, fd, 0);
  if (base == MAP_FAILED) {
    throw Error(ErrorCode::io, fmt::format("mmap failed: {}", std::strerror(errno)), {path});
  }
  std::shared_ptr<MappedFile> file(new MappedFile());
  file->path_ = path;
  file->access_ = access;
  file->identity_ = identity;
  file->base_ = static_cast<std::byte*>(base);
  file->file_ = closer.fd;  // the mapping owns it from here
  closer.fd = -1;
  return file;
}

MappedFile::~MappedFile() {
  if (base_ != nullptr) ::munmap(base_, static_cast<std::size_t>(identity_.size));
  if (file_ != invalid_file_handle) ::close(file_);
}

bool MappedFile::changed_on_disk() const {
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) return true;
  const std::int64_t mtime_ns =
      static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  return static_cast<std::uint64_t>(st.st_dev) != identity_.device ||
         static_cast<std::uint64_t>(st.st_ino) != identity_.inode ||
         static_cast<std::uint64_t>(st.st_size) != identity_.size || mtime_ns != identity_.mtime_ns;
}

void MappedFile::check_range(std::uint64_t offset, std::uint64_t n) const {
  if (offset > identity_.size || n > identity_.size - offset) {
    throw Error(ErrorCode::invalid_argument,
                fmt::format("range of {} bytes at byte {} is outside the mapped file of {} bytes",
                            n, offset, identity_.size),
                {path_, {}, offset});
  }
}

std::span<const std::byte> MappedFile::span(std::uint64_t offset, std::uint64_t n) const {
  check_range(offset, n);
  return {base_ + offset, static_cast<std::size_t>(n)};
}

std::span<std::byte> MappedFile::writable_span(std::uint64_t offset, std::uint64_t n) {
  if (access_ != Access::copy_on_write) {
    throw Error(ErrorCode::invalid_argument,
                "cannot write to a read-only mapping; open it copy-on-write", {path_, {}, offset});
  }
  check_range(offset, n);
  return {base_ + offset, static_cast<std::size_t>(n)};
}

void MappedFile::discard_private_pages(std::uint64_t offset, std::uint64_t n) {
  if (access_ != Access::copy_on_write) return;  // a shared read-only mapping has none
  check_range(offset, n);
  if (n == 0) return;
  const std::uint64_t begin = io::page_floor(offset);
  const std::uint64_t end = std::min(identity_.size, io::page_ceil(offset + n));
  io::drop_private_copies(base_ + begin, static_cast<std::size_t>(end - begin), path_, begin);
}

void MappedFile::advise(Advice advice, std::uint64_t offset, std::uint64_t n) {
  check_range(offset, n);
  if (n == 0) return;
  io::advise_memory(base_ + offset, static_cast<std::size_t>(n), advice, path_);
  io::advise_file(file_, offset, n, advice, path_);
}

void MappedFile::populate_read(std::uint64_t offset, std::uint64_t n) {
  check_range(offset, n);
  io::populate_read(base_ + offset, static_cast<std::size_t>(n), path_, offset);
}

void MappedFile::lock(std::uint64_t offset, std::uint64_t n) {
  check_range(offset, n);
  io::lock_memory(base_ + offset, static_cast<std::size_t>(n), path_);
}

void MappedFile::unlock(std::uint64_t offset, std::uint64_t n) noexcept {
  if (offset > identity_.size || n > identity_.size - offset) return;
  io::unlock_memory(base_ + offset, static_cast<std::size_t>(n));
}

std::uint64_t MappedFile::resident_bytes(std::uint64_t offset, std::uint64_t n) const {
  check_range(offset, n);
  return io::resident_bytes(base_ + offset, static_cast<std::size_t>(n), path_);
}

bool MappedFile::evict() noexcept {
  return io::evict(base_, static_cast<std::size_t>(identity_.size), file_, 0, identity_.size);
}

}  // namespace weightmap
