// A file opened for pread: the ByteSource behind every format reader.
#pragma once

#include <string>

#include "format/byte_source.hpp"
#include "weightmap/file_identity.hpp"

namespace weightmap::io {

class FileReader final : public format::ByteSource {
 public:
  // Throws Error(io) naming the path and the system's reason.
  explicit FileReader(std::string path);
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

// stat() of an open descriptor as a FileIdentity. Throws Error(io).
FileIdentity identity_of(int fd, const std::string& path);

}  // namespace weightmap::io
