// Drops a test's file from the page cache, so a test can start cold: written back first, since
// dirty pages cannot be dropped. On tmpfs the pages stay (callers check residency).
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <string>

namespace weightmap::testing {

// False when the file cannot be opened.
inline bool drop_from_page_cache(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
  return true;
}

}  // namespace weightmap::testing
