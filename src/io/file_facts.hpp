// What the auto load mode needs to know about a file before it chooses how to read it: the
// filesystem it is on, and how much of a set of byte ranges is in the page cache.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "weightmap/load.hpp"

namespace weightmap::io {

// statfs: the filesystem's name and whether mapping it is risky (network filesystems and
// FUSE: mapped reads there have been measured 30-50x slower than reads, and an I/O error
// arrives as SIGBUS). A filesystem statfs cannot name is "unknown", not risky.
FileFacts file_facts(const std::string& path);

// The name for a statfs f_type value ("ext4", "nfs", ...), and whether it is risky to map.
// Separate from file_facts so every entry of the table is testable without mounting it.
FileFacts filesystem_facts(std::uint64_t statfs_type);

struct FileRange {
  std::uint64_t offset = 0;
  std::uint64_t bytes = 0;
};

// Bytes of the ranges (widened to whole pages) whose pages are in the page cache, through a
// transient read-only mapping and mincore (no page is read). Throws Error(io) naming `path`.
std::uint64_t cached_bytes(const std::string& path, std::uint64_t file_size,
                           std::span<const FileRange> ranges);

}  // namespace weightmap::io
