// What weightmap knows about the filesystem a model file is on: the auto load mode reads
// files on network and FUSE filesystems instead of mapping them (see load.hpp).
#pragma once

#include <string>

#include "weightmap/export.hpp"

WEIGHTMAP_API_BEGIN
namespace weightmap {

// Facts about a file that plan() takes from load() in the auto mode (plan() does no I/O).
struct FileFacts {
  std::string filesystem = "unknown";
  bool risky_to_map = false;  // network or FUSE filesystem
};

}  // namespace weightmap
WEIGHTMAP_API_END
