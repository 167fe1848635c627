// `weightmap bench --cold`: dropping the model file from the page cache before a cold row.
#pragma once

#include <string>

namespace weightmap::cli {

// posix_fadvise(POSIX_FADV_DONTNEED) over the whole file: the kernel drops its clean pages
// (the bench only reads the file, so there is nothing to write back first). Pages the kernel
// keeps (tmpfs, pages another process has mapped) stay: callers check residency afterwards.
// Throws Error(io) naming the file when it cannot be opened or the advice is refused.
void drop_from_page_cache(const std::string& path);

}  // namespace weightmap::cli
