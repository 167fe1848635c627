// Callbacks and the page-cache policy: the C API's load options and WEIGHTMAP_CACHE_* flags
// as the C++ API's LoadOptions and CachePolicy, and the policy and residency calls.
#include "capi/policy.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "capi/boundary.hpp"
#include "capi/handles.hpp"
#include "weightmap/model_page_cache.hpp"

namespace weightmap::capi {
namespace {

struct FlagBit {
  bool CachePolicy::*field;
  std::uint32_t bit;
};

constexpr FlagBit kFlagBits[] = {
    {&CachePolicy::sequential, WEIGHTMAP_CACHE_SEQUENTIAL},
    {&CachePolicy::random, WEIGHTMAP_CACHE_RANDOM},
    {&CachePolicy::willneed, WEIGHTMAP_CACHE_WILLNEED},
    {&CachePolicy::populate, WEIGHTMAP_CACHE_POPULATE},
    {&CachePolicy::dontneed_on_release, WEIGHTMAP_CACHE_DONTNEED},
    {&CachePolicy::hugepage, WEIGHTMAP_CACHE_HUGEPAGE},
    {&CachePolicy::mlock, WEIGHTMAP_CACHE_MLOCK},
};

weightmap_load_options default_c_options() {
  const LoadOptions defaults;
  weightmap_load_options out{};
  out.struct_size = sizeof(out);
  // The 0.1 fields say the same as `mode` to a caller that reads them back.
  out.automatic_v0_1 = defaults.mode == LoadMode::automatic ? 1 : 0;
  out.use_mmap_v0_1 = defaults.mode == LoadMode::automatic || defaults.mode == LoadMode::mmap;
  out.allow_copy_on_write = defaults.allow_copy_on_write ? 1 : 0;
  out.direct_io_v0_1 = defaults.mode == LoadMode::direct ? 1 : 0;
  out.workers = defaults.workers;
  out.staging_bytes_cap = defaults.staging_bytes_cap;
  out.cache_flags = flags_from_policy(defaults.cache);
  out.cache_from_env = defaults.cache_from_env ? 1 : 0;
  out.mode = static_cast<std::int32_t>(defaults.mode);
  return out;
}

// The mode of a struct compiled against 0.1, which has no `mode`: from its three flags.
LoadMode mode_of_v0_1(const weightmap_load_options& in) {
  if (in.automatic_v0_1 != 0) return LoadMode::automatic;
  if (in.use_mmap_v0_1 == 0) return in.direct_io_v0_1 != 0 ? LoadMode::direct : LoadMode::read;
  return LoadMode::mmap;  // 0.1's mmap with direct_io read copies with O_DIRECT; now pread
}

LoadMode mode_from_c(std::int32_t mode) {
  switch (mode) {
    case WEIGHTMAP_LOAD_MODE_AUTO: return LoadMode::automatic;
    case WEIGHTMAP_LOAD_MODE_MMAP: return LoadMode::mmap;
    case WEIGHTMAP_LOAD_MODE_READ: return LoadMode::read;
    case WEIGHTMAP_LOAD_MODE_DIRECT: return LoadMode::direct;
    default:
      throw BadArgument("weightmap_load_model: options.mode is " + std::to_string(mode) +
                        ", not a WEIGHTMAP_LOAD_MODE_* value");
  }
}

}  // namespace

CachePolicy policy_from_flags(std::uint32_t flags) {
  std::uint32_t known = 0;
  CachePolicy policy;
  for (const FlagBit& flag : kFlagBits) {
    policy.*flag.field = (flags & flag.bit) != 0;
    known |= flag.bit;
  }
  if ((flags & ~known) != 0) {
    throw BadArgument("cache flags " + std::to_string(flags & ~known) +
                      " are not WEIGHTMAP_CACHE_* flags");
  }
  return policy;
}

std::uint32_t flags_from_policy(const CachePolicy& policy) {
  std::uint32_t flags = 0;
  for (const FlagBit& flag : kFlagBits) {
    if (policy.*flag.field) flags |= flag.bit;
  }
  return flags;
}

LoadOptions load_options_from_c(const weightmap_load_options* options) {
  const weightmap_load_options in =
      options == nullptr ? default_c_options()
                         : read_sized(options, default_c_options(), "weightmap_load_model options");
  const bool has_mode =
      options == nullptr || options->struct_size >= offsetof(weightmap_load_options, mode) +
                                                        sizeof(weightmap_load_options::mode);
  LoadOptions out;
  out.mode = has_mode ? mode_from_c(in.mode) : mode_of_v0_1(in);
  out.allow_copy_on_write = in.allow_copy_on_write != 0;
  out.workers = in.workers;
  out.staging_bytes_cap = static_cast<std::size_t>(in.staging_bytes_cap);
  out.cache = policy_from_flags(in.cache_flags);
  out.cache_from_env = in.cache_from_env != 0;
  if (in.progress != nullptr) {
    out.progress = [fn = in.progress, user = in.progress_user_data](const LoadProgress& p) {
      return fn(user, p.bytes_done, p.bytes_total, p.tensors_done, p.tensors_total) == 0;
    };
  }
  if (in.log != nullptr) {
    out.log = [fn = in.log, user = in.log_user_data](LogLevel level, std::string_view line) {
      const std::string text(line);  // NUL-terminated for C
      fn(user, static_cast<weightmap_log_level>(level), text.c_str());
    };
  }
  return out;
}

}  // namespace weightmap::capi

using weightmap::capi::guarded;
using weightmap::capi::require;

extern "C" {

weightmap_status weightmap_load_options_init(weightmap_load_options* options) {
  return guarded([&] {
    require(options, "weightmap_load_options_init", "options");
    // A caller built against an older, smaller struct gets the fields it knows.
    weightmap::capi::fill_sized(options, weightmap::capi::default_c_options(),
                                "weightmap_load_options_init");
  });
}

weightmap_status weightmap_cache_policy_parse(const char* words, uint32_t* flags) {
  return guarded([&] {
    require(words, "weightmap_cache_policy_parse", "words");
    require(flags, "weightmap_cache_policy_parse", "flags");
    *flags = weightmap::capi::flags_from_policy(weightmap::CachePolicy::parse(words));
  });
}

weightmap_status weightmap_cache_policy_from_env(uint32_t* flags) {
  return guarded([&] {
    require(flags, "weightmap_cache_policy_from_env", "flags");
    *flags = weightmap::capi::flags_from_policy(weightmap::CachePolicy::from_env());
  });
}

weightmap_status weightmap_cache_policy_string(uint32_t flags, char* buffer, size_t size,
                                               size_t* needed) {
  return guarded([&] {
    const std::string text = weightmap::capi::policy_from_flags(flags).to_string();
    if (size > 0) {
      require(buffer, "weightmap_cache_policy_string", "buffer");
      const std::size_t n = std::min(text.size(), size - 1);
      std::memcpy(buffer, text.data(), n);
      buffer[n] = '\0';
    }
    if (needed != nullptr) *needed = text.size();
  });
}

weightmap_status weightmap_model_residency(const weightmap_model* model, uint64_t* resident_bytes,
                                           uint64_t* tensor_bytes) {
  return guarded([&] {
    require(model, "weightmap_model_residency", "model");
    const weightmap::Residency residency = weightmap::page_cache_residency(*model->model);
    if (resident_bytes != nullptr) *resident_bytes = residency.resident_bytes;
    if (tensor_bytes != nullptr) *tensor_bytes = residency.tensor_bytes;
  });
}

}  // extern "C"
