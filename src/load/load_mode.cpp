#include "weightmap/load_mode.hpp"

namespace weightmap {

std::string_view load_mode_name(LoadMode mode) noexcept {
  switch (mode) {
    case LoadMode::automatic: return "auto";
    case LoadMode::mmap: return "mmap";
    case LoadMode::read: return "read";
    case LoadMode::direct: return "direct";
  }
  return "";
}

std::optional<LoadMode> load_mode_named(std::string_view name) noexcept {
  for (const LoadMode mode : kLoadModes) {
    if (load_mode_name(mode) == name) return mode;
  }
  return std::nullopt;
}

}  // namespace weightmap
