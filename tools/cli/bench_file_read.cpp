#include "cli/bench_file_read.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "weightmap/error.hpp"

namespace weightmap::cli {

ReadOnlyFd::ReadOnlyFd(const std::string& path)
    : path_(path), fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
  if (fd_ < 0) throw Error(ErrorCode::io, std::strerror(errno), {.file = path});
}

ReadOnlyFd::~ReadOnlyFd() { ::close(fd_); }

void read_fully(const ReadOnlyFd& fd, std::uint64_t offset, std::span<std::byte> out) {
  std::size_t done = 0;
  while (done < out.size()) {
    const ssize_t n =
        ::pread(fd.get(), out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      throw Error(ErrorCode::io, n < 0 ? std::strerror(errno) : "file ended early",
                  {.file = fd.path(), .offset = offset + done});
    }
    done += static_cast<std::size_t>(n);
  }
}

void read_fully(const std::string& path, std::uint64_t offset, std::span<std::byte> out) {
  read_fully(ReadOnlyFd(path), offset, out);
}

}  // namespace weightmap::cli
