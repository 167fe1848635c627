#pragma once

#include <cstdint>

namespace weightmap::ggml::detail {

// MiB for messages and report lines, as the core's report prints them.
inline double mib(std::uint64_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

}  // namespace weightmap::ggml::detail
