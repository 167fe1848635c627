#include "io/replacing_output.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>

#include "io/file_reader.hpp"
#include "weightmap/error.hpp"

namespace weightmap::io {
namespace {

namespace fs = std::filesystem;

// A hidden name beside the final one; random so that concurrent writers do not meet.
std::string temp_name_for(const std::string& final_path, std::mt19937_64& random) {
  const fs::path path(final_path);
  return (path.parent_path() /
          fmt::format(".{}.partial-{:016x}", path.filename().string(), random()))
      .string();
}

}  // namespace

ReplacingOutput::ReplacingOutput(std::string final_path) : final_path_(std::move(final_path)) {
  std::random_device seed;
  std::mt19937_64 random((std::uint64_t{seed()} << 32) ^ seed() ^
                         static_cast<std::uint64_t>(::getpid()));
  // O_EXCL reserves the name: whoever writes into it later truncates our empty file, never
  // someone else's.
  constexpr int kAttempts = 16;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    std::string candidate = temp_name_for(final_path_, random);
    const int fd = ::open(candidate.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) {
      ::close(fd);
      temp_path_ = std::move(candidate);
      return;
    }
    if (errno != EEXIST) {
      throw Error(ErrorCode::io,
                  fmt::format("cannot create a file in its folder: {}", std::strerror(errno)),
                  {final_path_});
    }
  }
  throw Error(ErrorCode::io, "cannot find an unused temporary name in its folder", {final_path_});
}

ReplacingOutput::~ReplacingOutput() {
  if (!committed_ && !temp_path_.empty()) ::unlink(temp_path_.c_str());
}

void ReplacingOutput::commit() {
  // Data before name: after a crash the final path holds the old file or the whole new one.
  const int fd = ::open(temp_path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    const int error = errno;
    if (fd >= 0) ::close(fd);
    throw Error(ErrorCode::io, fmt::format("cannot flush to disk: {}", std::strerror(error)),
                {temp_path_});
  }
  ::close(fd);
  if (::rename(temp_path_.c_str(), final_path_.c_str()) != 0) {
    throw Error(ErrorCode::io,
                fmt::format("cannot rename {} to it: {}", temp_path_, std::strerror(errno)),
                {final_path_});
  }
  committed_ = true;
}

std::optional<FileIdentity> identity_at(const std::string& path) {
  // O_PATH: fstat needs no read permission on the file.
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
