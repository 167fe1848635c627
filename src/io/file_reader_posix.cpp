#include "io/file_reader.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "io/page_cache.hpp"
#include "weightmap/error.hpp"

namespace weightmap::io {

std::string_view file_kind_name(unsigned mode) noexcept {
  switch (mode & S_IFMT) {
    case S_IFREG: return "regular file";
    case S_IFDIR: return "directory";
    case S_IFIFO: return "FIFO";
    case S_IFSOCK: return "socket";
    case S_IFCHR: return "character device";
    case S_IFBLK: return "block device";
    case S_IFLNK: return "symbolic link";
    default: return "unknown kind of file";
  }
}

native_file_handle open_for_reading(const std::string& path, int flags) {
  // O_NONBLOCK: open() of a FIFO with no writer returns at once instead of waiting for one;
  // the caller's fstat then refuses it.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | flags);
  if (fd < 0) {
    throw Error(ErrorCode::io, fmt::format("cannot open: {}", std::strerror(errno)), {path});
  }
  return fd;
}

FileIdentity adopt_regular_file(native_file_handle fd, const std::string& path) {
  try {
    const FileIdentity identity = identity_of(fd, path);
    // Linux ignores O_NONBLOCK on regular files, but a FUSE server sees the flag: reads
    // should block as they would on any file.
    const int status = ::fcntl(fd, F_GETFL);
    if (status < 0 || ::fcntl(fd, F_SETFL, status & ~O_NONBLOCK) != 0) {
      throw Error(ErrorCode::io, fmt::format("fcntl failed: {}", std::strerror(errno)), {path});
    }
    return identity;
  } catch (...) {
    ::close(fd);
    throw;
  }
}

FileIdentity identity_of(native_file_handle fd, const std::string& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    throw Error(ErrorCode::io, fmt::format("cannot stat: {}", std::strerror(errno)), {path});
  }
  // Block devices too: their st_size is 0 (the size needs an ioctl), and nothing in
  // (device, inode, size, mtime) changes when their contents do, so neither the range checks
  // nor the identity checks made for files would hold.
  if (!S_ISREG(st.st_mode)) {
    throw Error(ErrorCode::io, fmt::format("not a regular file ({})", file_kind_name(st.st_mode)),
                {path});
  }
  FileIdentity id;
  id.device = static_cast<std::uint64_t>(st.st_dev);
  id.inode = static_cast<std::uint64_t>(st.st_ino);
  id.size = static_cast<std::uint64_t>(st.st_size);
  id.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  return id;
}

FileReader::FileReader(std::string path) : FileReader(path, open_for_reading(path)) {}

FileReader::FileReader(std::string path, native_file_handle file)
    : path_(std::move(path)), file_(file) {
  identity_ = adopt_regular_file(file_, path_);
}

FileReader::~FileReader() {
  if (file_ != invalid_file_handle) ::close(file_);
}

std::unique_ptr<FileReader> open_unless_directory(const std::string& path) {
  const int fd = open_for_reading(path);
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    ::close(fd);
    return nullptr;
  }
  return std::make_unique<FileReader>(path, fd);  // refuses what is not a regular file
}

void FileReader::advise(std::uint64_t offset, std::uint64_t bytes, Advice advice) const {
  advise_file(file_, offset, bytes, advice, path_);
}

void FileReader::write_back_and_drop() const {
  io::write_back_and_drop(file_, identity_.size, path_);
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
        ::pread(file_, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
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
