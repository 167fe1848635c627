// Metadata lookup through the C API: strings, numbers and booleans by key, arrays by count and
// element.
#include "weightmap/metadata.hpp"

#include <string>
#include <type_traits>
#include <variant>

#include "capi/boundary.hpp"
#include "capi/handles.hpp"
#include "weightmap/error.hpp"

using weightmap::capi::count_of;
using weightmap::capi::fill_sized;
using weightmap::capi::guarded;
using weightmap::capi::require;
using weightmap::capi::require_index;

namespace {

const weightmap::MetadataEntry& find_entry(const weightmap_model* model, const char* key,
                                           const char* call) {
  require(model, call, "model");
  require(key, call, "key");
  const weightmap::MetadataEntry* entry = model->model->find_metadata(key);
  if (entry == nullptr) {
    throw weightmap::Error(weightmap::ErrorCode::not_found,
                           "no metadata key " + weightmap::printable(key) + " in the model");
  }
  return *entry;
}

weightmap_metadata_value describe(const weightmap::MetadataValue& value) {
  weightmap_metadata_value out{};
  out.type = static_cast<uint32_t>(value.type);
  out.element_type = static_cast<uint32_t>(value.element_type);
  std::visit(
      [&](const auto& held) {
        using Held = std::decay_t<decltype(held)>;
        if constexpr (std::is_same_v<Held, std::string>) {
          out.string = held.c_str();
          out.string_length = held.size();
        } else if constexpr (std::is_same_v<Held, weightmap::MetadataArray>) {
          out.array_count = held.size();
        } else {
          // Numbers and booleans in every form; out-of-range casts of a double are avoided
          // by clamping through the integer forms' limits.
          const double as_double = static_cast<double>(held);
          out.as_double = as_double;
          if constexpr (std::is_same_v<Held, double>) {
            out.as_int =
                as_double >= -9.2e18 && as_double <= 9.2e18 ? static_cast<int64_t>(as_double) : 0;
            out.as_uint =
                as_double >= 0 && as_double <= 1.8e19 ? static_cast<uint64_t>(as_double) : 0;
          } else {
            out.as_int = static_cast<int64_t>(held);
            out.as_uint = static_cast<uint64_t>(held);
          }
        }
      },
      value.value);
  return out;
}

}  // namespace

extern "C" {

weightmap_status weightmap_model_metadata_count(const weightmap_model* model, size_t* count) {
  return count_of("weightmap_model_metadata_count", model, "model", count,
                  [](const weightmap_model& m) { return m.model->metadata().size(); });
}

weightmap_status weightmap_model_metadata_key(const weightmap_model* model, size_t index,
                                              const char** key) {
  return guarded([&] {
    constexpr const char* call = "weightmap_model_metadata_key";
    require(model, call, "model");
    require(key, call, "key");
    const auto& entries = model->model->metadata();
    require_index(index, entries.size(), call, "metadata");
    *key = entries[index].key.c_str();
  });
}

weightmap_status weightmap_model_metadata(const weightmap_model* model, const char* key,
                                          weightmap_metadata_value* value) {
  return guarded([&] {
    constexpr const char* call = "weightmap_model_metadata";
    fill_sized(value, describe(find_entry(model, key, call).value), call);
  });
}

weightmap_status weightmap_model_metadata_element(const weightmap_model* model, const char* key,
                                                  size_t index, weightmap_metadata_value* value) {
  return guarded([&] {
    constexpr const char* call = "weightmap_model_metadata_element";
    const weightmap::MetadataEntry& entry = find_entry(model, key, call);
    const auto* array = std::get_if<weightmap::MetadataArray>(&entry.value.value);
    if (array == nullptr) {
      throw weightmap::capi::BadArgument(std::string(call) + ": metadata key " +
                                         weightmap::printable(key) + " is not an array");
    }
    require_index(index, array->size(), call, "array element");
    fill_sized(value, describe((*array)[index]), call);
  });
}

}  // extern "C"
