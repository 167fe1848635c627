// Key/value metadata of a model file. Types are GGUF's (ids equal GGUF's value types);
// safetensors `__metadata__` values are strings.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "weightmap/export.hpp"

WEIGHTMAP_API_BEGIN
namespace weightmap {

enum class MetadataType : std::uint32_t {
  u8 = 0,
  i8 = 1,
  u16 = 2,
  i16 = 3,
  u32 = 4,
  i32 = 5,
  f32 = 6,
  boolean = 7,
  string = 8,
  array = 9,
  u64 = 10,
  i64 = 11,
  f64 = 12,
};

std::string_view metadata_type_name(MetadataType type);

struct MetadataValue;
using MetadataArray = std::vector<MetadataValue>;

struct MetadataValue {
  MetadataType type = MetadataType::string;
  // For arrays: the type of the elements (arrays of arrays say `array`).
  MetadataType element_type = MetadataType::string;
  // Unsigned ints in uint64_t, signed in int64_t, f32/f64 in double.
  std::variant<std::uint64_t, std::int64_t, double, bool, std::string, MetadataArray> value;
};

struct MetadataEntry {
  std::string key;
  MetadataValue value;
  std::uint32_t file = 0;  // index into Model::files()
};

}  // namespace weightmap
WEIGHTMAP_API_END
