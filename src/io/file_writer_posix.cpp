#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "io/file_writer.hpp"
#include "weightmap/error.hpp"

namespace weightmap::io {

FileWriter::FileWriter(std::string path, std::size_t buffer_bytes) : path_(std::move(path)) {
  if (buffer_bytes == 0) {
    throw Error(ErrorCode::invalid_argument, "the write buffer size must be at least 1 byte",
                {path_});
  }
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    throw Error(ErrorCode::io, fmt::format("cannot create: {}", std::strerror(errno)), {path_});
  }
  try {
    buffer_.resize(buffer_bytes);
  } catch (...) {
    ::close(fd_);
    ::unlink(path_.c_str());
    throw;
  }
}

FileWriter::~FileWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!finished_) ::unlink(path_.c_str());
}

void FileWriter::flush() {
  std::size_t done = 0;
  while (done < used_) {
    const ssize_t n = ::write(fd_, buffer_.data() + done, used_ - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error(ErrorCode::io, fmt::format("write failed: {}", std::strerror(errno)),
                  {path_, {}, written_ + done});
    }
    done += static_cast<std::size_t>(n);
  }
  written_ += used_;
  used_ = 0;
}

void FileWriter::append(std::span<const std::byte> bytes) {
  while (!bytes.empty()) {
    if (used_ == buffer_.size()) flush();
    const std::size_t n = std::min(bytes.size(), buffer_.size() - used_);
    std::memcpy(buffer_.data() + used_, bytes.data(), n);
    used_ += n;
    bytes = bytes.subspan(n);
  }
}

void FileWriter::append_zeros(std::uint64_t count) {
  while (count > 0) {
    if (used_ == buffer_.size()) flush();
    const std::size_t n =
        static_cast<std::size_t>(std::min<std::uint64_t>(count, buffer_.size() - used_));
    std::memset(buffer_.data() + used_, 0, n);
    used_ += n;
    count -= n;
  }
}

void FileWriter::append_generated(
    std::uint64_t count, const std::function<void(std::uint64_t, std::span<std::byte>)>& fill) {
  std::uint64_t done = 0;
  while (done < count) {
    if (used_ == buffer_.size()) flush();
    const std::size_t n =
        static_cast<std::size_t>(std::min<std::uint64_t>(count - done, buffer_.size() - used_));
    fill(done, std::span<std::byte>(buffer_.data() + used_, n));
    used_ += n;
    done += n;
  }
}

void FileWriter::finish() {
  flush();
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) {
    throw Error(ErrorCode::io,
                fmt::format("closing after writing failed: {}", std::strerror(errno)), {path_});
  }
  finished_ = true;
}

}  // namespace weightmap::io
