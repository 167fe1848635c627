#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "io/file_reader.hpp"
#include "weightmap/error.hpp"

namespace weightmap::io {

FileIdentity identity_of(int fd, const std::string& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    throw Error(ErrorCode::io, fmt::format("cannot stat: {}", std::strerror(errno)), {path});
  }
  if (!S_ISREG(st.st_mode)) {
    throw Error(ErrorCode::io, "not a regular file", {path});
  }
  FileIdentity id;
  id.device = static_cast<std::uint64_t>(st.st_dev);
  id.inode = static_cast<std::uint64_t>(st.st_ino);
  id.size = static_cast<std::uint64_t>(st.st_size);
  id.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  return id;
}

FileReader::FileReader(std::string path) : path_(std::move(path)) {
  fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) {
    throw Error(ErrorCode::io, fmt::format("cannot open: {}", std::strerror(errno)), {path_});
  }
  try {
    identity_ = identity_of(fd_, path_);
  } catch (...) {
    ::close(fd_);
    throw;
  }
}

FileReader::~FileReader() {
  if (fd_ >= 0) ::close(fd_);
}

void FileReader::read_at(std::uint64_t offset, std::span<std::byte> out) const {
  if (offset > identity_.size || out.size() > identity_.size - offset) {
    throw Error(ErrorCode::io,
                fmt::format("unexpected end of file: needed {} bytes at byte {}, the file has {}",
                            out.size(), offset, identity_.size),
                {path_, {}, offset});
  }
  std::size_t done = 0;
  while (done < out.size()) {
    const ssize_t n =
        ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error(ErrorCode::io, fmt::format("read failed: {}", std::strerror(errno)),
                  {path_, {}, offset + done});
    }
    if (n == 0) {
      // The file shrank after we measured it.
      throw Error(ErrorCode::io, "file became shorter while reading it",
                  {path_, {}, offset + done});
    }
    done += static_cast<std::size_t>(n);
  }
}

}  // namespace weightmap::io
