#include "weightmap/version.hpp"

namespace weightmap {

// The macros as they were when the library itself was compiled.
Version version() noexcept {
  return {WEIGHTMAP_VERSION_MAJOR, WEIGHTMAP_VERSION_MINOR, WEIGHTMAP_VERSION_PATCH};
}

std::string_view version_string() noexcept { return WEIGHTMAP_VERSION_STRING; }

}  // namespace weightmap
