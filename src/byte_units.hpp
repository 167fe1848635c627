// MiB for report lines and messages: the core's LoadReport, the loader's notes and the ggml
// adapter's report all print sizes in it. Header-only, so the ggml adapter, which sees no
// symbol of the core but the public API, can use it too.
#pragma once

#include <cstdint>

namespace weightmap {

inline double mib(std::uint64_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

}  // namespace weightmap
