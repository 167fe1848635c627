// What weightmap knows about the filesystem a model file is on: the auto load mode reads
// files on network and FUSE filesystems instead of mapping them (see plan.hpp).
#pragma once

#include <string>

#include "weightmap/export.hpp"

WEIGHTMAP_API_BEGIN
namespace weightmap {

// Facts about a file that the auto mode decides on (see plan() in plan.hpp).
struct FileFacts {
  std::string filesystem = "unknown";
  bool risky_to_map = false;  // network or FUSE filesystem
};

}  // namespace weightmap
WEIGHTMAP_API_END
