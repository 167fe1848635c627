// What the auto load mode needs to know about a file's filesystem before it chooses how to
// read it. (How much of it is in the page cache: io/page_cache.hpp, cached_bytes.)
#pragma once

#include <cstdint>
#include <string>

#include "weightmap/file_facts.hpp"

namespace weightmap::io {

// statfs: the filesystem's name and whether mapping it is risky (network filesystems and
// FUSE: mapped reads there have been measured 30-50x slower than reads, and an I/O error
// arrives as SIGBUS). A filesystem statfs cannot name is "unknown", not risky.
FileFacts file_facts(const std::string& path);

// The name for a statfs f_type value ("ext4", "nfs", ...), and whether it is risky to map.
// Separate from file_facts so every entry of the table is testable without mounting it.
FileFacts filesystem_facts(std::uint64_t statfs_type);

}  // namespace weightmap::io
