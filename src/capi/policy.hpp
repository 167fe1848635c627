// The C API's cache-policy flags and load options, turned into the C++ API's types.
#pragma once

#include <cstdint>

#include "weightmap/cache_policy.hpp"
#include "weightmap/load.hpp"
#include "weightmap/weightmap.h"

namespace weightmap::capi {

CachePolicy policy_from_flags(std::uint32_t flags);
std::uint32_t flags_from_policy(const CachePolicy& policy);

// `options` may be NULL (the defaults). The callbacks are wrapped so a C function pointer and
// its user data are called as LoadOptions expects.
LoadOptions load_options_from_c(const weightmap_load_options* options);

}  // namespace weightmap::capi
