#include "cli/bench_cold.hpp"

#include <fcntl.h>

#include <cstring>

#include "cli/bench_file_read.hpp"
#include "weightmap/error.hpp"

namespace weightmap::cli {

void drop_from_page_cache(const std::string& path) {
  const ReadOnlyFd fd(path);
  // posix_fadvise returns the error number instead of setting errno.
  if (const int error = ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED); error != 0) {
    throw Error(ErrorCode::io,
                std::string("cannot drop the file from the page cache: ") + std::strerror(error),
                {.file = path});
  }
}

}  // namespace weightmap::cli
