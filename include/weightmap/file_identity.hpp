#pragma once

#include <cstdint>

#include "weightmap/export.hpp"

WEIGHTMAP_API_BEGIN
namespace weightmap {

// Enough to tell that a file was replaced or changed since it was indexed.
struct FileIdentity {
  std::uint64_t device = 0;
  std::uint64_t inode = 0;
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;

  friend bool operator==(const FileIdentity&, const FileIdentity&) = default;
};

}  // namespace weightmap
WEIGHTMAP_API_END
