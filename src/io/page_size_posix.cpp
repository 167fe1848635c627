#include <unistd.h>

#include "weightmap/mapped_file.hpp"

namespace weightmap {

std::size_t page_size() noexcept {
  static const auto size = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return size;
}

}  // namespace weightmap
