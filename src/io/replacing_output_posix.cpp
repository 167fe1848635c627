#include "io/replacing_output.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <random>

#include "io/file_reader.hpp"
#include "io/live_temp_files.hpp"
#include "weightmap/error.hpp"

namespace weightmap::io {
namespace {

namespace fs = std::filesystem;

std::string folder_of(const std::string& path) {
  const fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

// ".NAME.partial-": every temporary file of one output starts with it.
std::string temp_prefix(const std::string& final_path) {
  return "." + fs::path(final_path).filename().string() + ".partial-";
}

// The process id in "PID-XXXXXXXX" (what follows the prefix), or 0 when it is not one of ours.
pid_t pid_in(std::string_view rest) {
  const std::size_t dash = rest.find('-');
  if (dash == std::string_view::npos || dash == 0 || rest.size() - dash - 1 != 8) return 0;
  pid_t pid = 0;
  const auto [end, ec] = std::from_chars(rest.data(), rest.data() + dash, pid);
  if (ec != std::errc() || end != rest.data() + dash || pid <= 0) return 0;
  return pid;
}

// Removes `.NAME.partial-PID-X` files of this output left by processes that are gone: the
// process does not exist and nobody holds the file's lock (a live writer holds it from just
// after creating the file until it renames or removes it). Best effort: any error leaves the
// file where it is.
void remove_stale_temporaries(const std::string& final_path) {
  const std::string folder = folder_of(final_path);
  const std::string prefix = temp_prefix(final_path);
  DIR* dir = ::opendir(folder.c_str());
  if (dir == nullptr) return;
  const int dir_fd = ::dirfd(dir);
  while (const dirent* entry = ::readdir(dir)) {
    const std::string_view name(entry->d_name);
    if (!name.starts_with(prefix)) continue;
    const pid_t pid = pid_in(name.substr(prefix.size()));
    if (pid == 0 || pid == ::getpid()) continue;
    if (::kill(pid, 0) == 0 || errno != ESRCH) continue;  // alive, or not ours to know
    const int fd = ::openat(dir_fd, entry->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat st {};
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && ::flock(fd, LOCK_EX | LOCK_NB) == 0) {
      ::unlinkat(dir_fd, entry->d_name, 0);
    }
    ::close(fd);
  }
  ::closedir(dir);
}

// Holds SIGINT and SIGTERM back while a temporary file is created and remembered, so that no
// signal finds it created but not yet known to the handler.
class SignalsHeld {
 public:
  SignalsHeld() {
    sigset_t held;
    sigemptyset(&held);
    sigaddset(&held, SIGINT);
    sigaddset(&held, SIGTERM);
    ::pthread_sigmask(SIG_BLOCK, &held, &previous_);
  }
  ~SignalsHeld() { ::pthread_sigmask(SIG_SETMASK, &previous_, nullptr); }
  SignalsHeld(const SignalsHeld&) = delete;
  SignalsHeld& operator=(const SignalsHeld&) = delete;

 private:
  sigset_t previous_;
};

}  // namespace

ReplacingOutput::ReplacingOutput(std::string final_path) : final_path_(std::move(final_path)) {
  (void)identity_at(final_path_);  // refuses folders, devices and FIFOs before any work
}

ReplacingOutput::~ReplacingOutput() {
  if (file_ != invalid_file_handle) ::close(file_);
  if (!committed_ && !temp_path_.empty()) ::unlink(temp_path_.c_str());
  forget_temp_file(signal_slot_);
}

void ReplacingOutput::create() {
  remove_stale_temporaries(final_path_);
  std::random_device seed;
  std::mt19937 random(seed() ^ static_cast<std::uint32_t>(::getpid()));
  const std::string stem = (fs::path(folder_of(final_path_)) / temp_prefix(final_path_)).string() +
                           std::to_string(::getpid()) + "-";
  constexpr int kAttempts = 16;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    std::string candidate = fmt::format("{}{:08x}", stem, random());
    const SignalsHeld held;
    // O_EXCL: the name is ours alone; nobody else's file is ever truncated.
    const int fd = ::open(candidate.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) {
      (void)::flock(fd, LOCK_EX | LOCK_NB);  // tells a later run's cleanup that we are alive
      file_ = fd;
      temp_path_ = std::move(candidate);
      signal_slot_ = remember_temp_file(temp_path_);
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

void ReplacingOutput::write(std::span<const std::byte> bytes) {
  if (file_ == invalid_file_handle) create();
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(file_, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error(ErrorCode::io, fmt::format("write failed: {}", std::strerror(errno)),
                  {final_path_, {}, written_ + done});
    }
    done += static_cast<std::size_t>(n);
  }
  written_ += done;
}

void ReplacingOutput::commit() {
  if (file_ == invalid_file_handle) create();
  // Data before name: after a crash the final path holds the old file or the whole new one.
  if (::fsync(file_) != 0) {
    throw Error(ErrorCode::io, fmt::format("cannot flush to disk: {}", std::strerror(errno)),
                {final_path_});
  }
  const int fd = file_;
  file_ = invalid_file_handle;
  if (::close(fd) != 0) {  // network filesystems report write errors here
    throw Error(ErrorCode::io,
                fmt::format("closing after writing failed: {}", std::strerror(errno)),
                {final_path_});
  }
  if (::rename(temp_path_.c_str(), final_path_.c_str()) != 0) {
    throw Error(ErrorCode::io,
                fmt::format("cannot rename {} to it: {}", temp_path_, std::strerror(errno)),
                {final_path_});
  }
  committed_ = true;
  forget_temp_file(signal_slot_);
  signal_slot_ = -1;
  // The rename itself reaches the disk with the folder's next flush; ask for it now.
  const int dir_fd = ::open(folder_of(final_path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    (void)::fsync(dir_fd);
    ::close(dir_fd);
  }
}

std::optional<std::size_t> find_same_file(const std::string& path,
                                          std::span<const FileIdentity> files) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;  // nothing there, or unreachable
  for (std::size_t i = 0; i < files.size(); ++i) {
    if (static_cast<std::uint64_t>(st.st_dev) == files[i].device &&
        static_cast<std::uint64_t>(st.st_ino) == files[i].inode) {
      return i;
    }
  }
  return std::nullopt;
}

}  // namespace weightmap::io
