// A file opened for pread: the ByteSource behind every format reader.
#pragma once

#include <string>
#include <string_view>

#include "io/byte_source.hpp"
#include "weightmap/file_identity.hpp"

namespace weightmap::io {

class FileReader final : public ByteSource {
 public:
  // Throws Error(io) naming the path and the system's reason, or "not a regular file (FIFO)"
  // (or socket, character device, block device, directory). Never blocks on a FIFO.
  explicit FileReader(std::string path);
  // Adopts `fd` (from open_for_reading), closing it also when it throws.
  FileReader(std::string path, int fd);
  ~FileReader() override;
  FileReader(const FileReader&) = delete;
  FileReader& operator=(const FileReader&) = delete;

  const std::string& name() const override { return path_; }
  std::uint64_t size() const override { return identity_.size; }
  void read_at(std::uint64_t offset, std::span<std::byte> out) const override;
  const FileIdentity& identity() const noexcept { return identity_; }
  // For posix_fadvise on the file (page-cache policy of the copy path).
  int descriptor() const noexcept { return fd_; }

 private:
  std::string path_;
  int fd_ = -1;
  FileIdentity identity_;
};

// fstat() of an open descriptor as a FileIdentity. Throws Error(io), also for anything but
// a regular file: "not a regular file (FIFO)".
FileIdentity identity_of(int fd, const std::string& path);

// open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | flags): returns at once on a FIFO or a
// device, so that adopt_regular_file can refuse it. Throws Error(io) "cannot open: " + the
// system's reason (ELOOP, EACCES, ENOTDIR, ...).
int open_for_reading(const std::string& path, int flags = 0);

// For a descriptor from open_for_reading: its identity (identity_of, refusing anything but
// a regular file) with O_NONBLOCK cleared. Closes `fd` when it throws.
FileIdentity adopt_regular_file(int fd, const std::string& path);

// "FIFO", "socket", "character device", "block device", "directory", ... for st_mode.
std::string_view file_kind_name(unsigned mode) noexcept;

}  // namespace weightmap::io
