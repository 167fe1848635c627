#include "weightmap/mapped_file.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "io/file_reader.hpp"
#include "weightmap/error.hpp"

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

}  // namespace weightmap
