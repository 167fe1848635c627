#include "io/identity_at.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "io/file_reader.hpp"
#include "weightmap/error.hpp"

namespace weightmap::io {

std::optional<FileIdentity> identity_at(const std::string& path) {
  // O_PATH: fstat needs no read permission on the file, and a FIFO does not block.
  const int fd = ::open(path.c_str(), O_PATH | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::nullopt;
    throw Error(ErrorCode::io, fmt::format("cannot open: {}", std::strerror(errno)), {path});
  }
  try {
    const FileIdentity id = identity_of(fd, path);
    ::close(fd);
    return id;
  } catch (...) {
    ::close(fd);
    throw;
  }
}

}  // namespace weightmap::io
