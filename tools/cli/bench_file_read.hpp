// Plain reads for the bench's floors and baseline: pread() until a span is full.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace weightmap::cli {

// A read-only descriptor, closed with its owner. Throws Error(io) naming the file.
class ReadOnlyFd {
 public:
  explicit ReadOnlyFd(const std::string& path);
  ~ReadOnlyFd();
  ReadOnlyFd(const ReadOnlyFd&) = delete;
  ReadOnlyFd& operator=(const ReadOnlyFd&) = delete;
  int get() const { return fd_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_;
};

// pread() from `offset` until `out` is full. Throws Error(io) naming the file and the byte
// where a read failed or the file ended.
void read_fully(const ReadOnlyFd& fd, std::uint64_t offset, std::span<std::byte> out);
void read_fully(const std::string& path, std::uint64_t offset, std::span<std::byte> out);

}  // namespace weightmap::cli
