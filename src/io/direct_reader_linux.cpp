#include "io/direct_reader.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "io/aligned_buffer.hpp"
#include "io/file_reader.hpp"
#include "weightmap/error.hpp"

namespace weightmap::io {

std::unique_ptr<DirectReader> DirectReader::open(const std::string& path, std::string* refusal) {
  // Without blocking on a FIFO, and refusing anything but a regular file, as FileReader.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_DIRECT);
  if (fd < 0) {
    if (errno == EINVAL) {
      if (refusal != nullptr) *refusal = std::strerror(errno);
      return nullptr;
    }
    throw Error(ErrorCode::io, fmt::format("cannot open: {}", std::strerror(errno)), {path});
  }
  (void)adopt_regular_file(fd, path);
  // Some filesystems accept the flag at open and refuse the reads: try one block.
  std::shared_ptr<std::byte> probe;
  try {
    probe = allocate_aligned(kBlock, kBlock);
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (::pread(fd, probe.get(), kBlock, 0) < 0) {
    const int error = errno;
    ::close(fd);
    if (refusal != nullptr) *refusal = std::strerror(error);
    return nullptr;
  }
  return std::unique_ptr<DirectReader>(new DirectReader(path, fd));
}

DirectReader::~DirectReader() {
  if (file_ != invalid_file_handle) ::close(file_);
}

std::span<const std::byte> DirectReader::read(std::uint64_t offset, std::size_t n,
                                              std::span<std::byte> staging) const {
  const std::uint64_t begin = offset / kBlock * kBlock;
  const std::uint64_t end = (offset + n + kBlock - 1) / kBlock * kBlock;
  const auto want = static_cast<std::size_t>(end - begin);
  if (staging.size() < want || reinterpret_cast<std::uintptr_t>(staging.data()) % kBlock != 0) {
    throw Error(ErrorCode::invalid_argument, "direct-I/O staging is too small or misaligned",
                {path_, {}, offset});
  }
  const auto lead = static_cast<std::size_t>(offset - begin);
  std::size_t done = 0;
  while (done < lead + n) {
    const ssize_t got =
        ::pread(file_, staging.data() + done, want - done, static_cast<off_t>(begin + done));
    if (got < 0) {
      if (errno == EINTR) continue;
      throw Error(ErrorCode::io, fmt::format("direct read failed: {}", std::strerror(errno)),
                  {path_, {}, begin + done});
    }
    if (got == 0) {
      throw Error(ErrorCode::io, "file became shorter while reading it", {path_, {}, begin + done});
    }
    done += static_cast<std::size_t>(got);
    // A short O_DIRECT read that is not a multiple of the block is the end of the file.
    if (done % kBlock != 0 && done < lead + n) {
      throw Error(ErrorCode::io, "file became shorter while reading it", {path_, {}, begin + done});
    }
  }
  return staging.subspan(lead, n);
}

}  // namespace weightmap::io
