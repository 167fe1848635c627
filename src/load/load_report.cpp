#include <fmt/format.h>

#include "byte_units.hpp"
#include "weightmap/load.hpp"

namespace weightmap {

std::string LoadReport::summary_line() const {
  return fmt::format(
      "memory-mapped {} tensors in {} files ({:.1f} MiB), loaded {} tensors ({:.1f} MiB, {} "
      "converted) in {:.3f} s",
      mapped_tensors, mapped_files, mib(mapped_bytes), loaded_tensors, mib(loaded_bytes),
      converted_tensors, seconds);
}

}  // namespace weightmap
