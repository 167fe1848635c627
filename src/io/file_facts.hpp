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

// Bytes of the ranges that are in the page cache (no page is read): cachestat(2) where the
// kernel has it (6.5+), else an estimate from mincore of up to 4096 pages spread over the
// ranges. Throws Error(io) naming `path`.
std::uint64_t cached_bytes(const std::string& path, std::uint64_t file_size,
                           std::span<const FileRange> ranges);

// The estimate cached_bytes falls back on without cachestat (public for its test).
std::uint64_t sampled_mincore_bytes(int fd, const std::string& path, std::uint64_t file_size,
                                    std::span<const FileRange> ranges);

}  // namespace weightmap::io
