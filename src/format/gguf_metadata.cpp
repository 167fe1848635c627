#include "format/gguf_metadata.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <type_traits>

#include "weightmap/error.hpp"

namespace weightmap::format {
namespace {

// The fewest bytes one value of a type can take in the file: what an array count is checked
// against before anything is allocated for it.
std::uint64_t min_value_bytes(MetadataType type) noexcept {
  switch (type) {
    case MetadataType::u8:
    case MetadataType::i8:
    case MetadataType::boolean: return 1;
    case MetadataType::u16:
    case MetadataType::i16: return 2;
    case MetadataType::u32:
    case MetadataType::i32:
    case MetadataType::f32: return 4;
    case MetadataType::u64:
    case MetadataType::i64:
    case MetadataType::f64:
    case MetadataType::string: return 8;     // the length of an empty string
    case MetadataType::array: return 4 + 8;  // element type and count of an empty array
  }
  return 1;
}

// Unsigned ints are stored as uint64_t, signed as int64_t, floats as double.
template <typename Raw>
using Stored =
    std::conditional_t<std::is_floating_point_v<Raw>, double,
                       std::conditional_t<std::is_signed_v<Raw>, std::int64_t, std::uint64_t>>;

class ValueReader {
 public:
  explicit ValueReader(GgufCursor& cursor) : cursor_(cursor) {}

  MetadataValue read(MetadataType type, int depth) {
    MetadataValue value;
    value.type = type;
    read_into(value, depth);
    return value;
  }

  MetadataType read_type(std::string_view what) {
    const std::uint64_t at = cursor_.offset();
    const auto id = cursor_.read<std::uint32_t>(what);
    if (const auto type = gguf_value_type(id)) return *type;
    throw Error(ErrorCode::malformed, fmt::format("unknown metadata value type {}", id),
                {cursor_.file(), {}, at});
  }

 private:
  // `value.type` is set; fills in the rest.
  void read_into(MetadataValue& value, int depth) {
    switch (value.type) {
      case MetadataType::u8: return scalar<std::uint8_t>(value);
      case MetadataType::i8: return scalar<std::int8_t>(value);
      case MetadataType::u16: return scalar<std::uint16_t>(value);
      case MetadataType::i16: return scalar<std::int16_t>(value);
      case MetadataType::u32: return scalar<std::uint32_t>(value);
      case MetadataType::i32: return scalar<std::int32_t>(value);
      case MetadataType::u64: return scalar<std::uint64_t>(value);
      case MetadataType::i64: return scalar<std::int64_t>(value);
      case MetadataType::f32: return scalar<float>(value);
      case MetadataType::f64: return scalar<double>(value);
      case MetadataType::boolean: value.value.emplace<bool>(read_bool()); return;
      case MetadataType::string: value.value = cursor_.read_string("string value"); return;
      case MetadataType::array: return array(value, depth + 1);
    }
  }

  template <typename Raw>
  void scalar(MetadataValue& value) {
    value.value = static_cast<Stored<Raw>>(cursor_.read<Raw>("metadata value"));
  }

  bool read_bool() {
    const std::uint64_t at = cursor_.offset();
    const auto byte = cursor_.read<std::uint8_t>("bool value");
    if (byte > 1) {
      throw Error(ErrorCode::malformed, fmt::format("bool value {} is neither 0 nor 1", byte),
                  {cursor_.file(), {}, at});
    }
    return byte == 1;
  }

  void array(MetadataValue& value, int depth) {
    const std::uint64_t type_offset = cursor_.offset();
    if (depth > kGgufMaxArrayNesting) {
      throw Error(ErrorCode::malformed,
                  fmt::format("arrays are nested more than {} deep", kGgufMaxArrayNesting),
                  {cursor_.file(), {}, type_offset});
    }
    const MetadataType element = read_type("array element type");
    const std::uint64_t count_offset = cursor_.offset();
    const auto count = cursor_.read<std::uint64_t>("array length");
    const std::uint64_t min_bytes = min_value_bytes(element);
    if (count > cursor_.remaining() / min_bytes) {
      throw Error(ErrorCode::malformed,
                  fmt::format("array of {} {} values cannot fit in the {} bytes left in the file",
                              count, metadata_type_name(element), cursor_.remaining()),
                  {cursor_.file(), {}, count_offset});
    }
    value.element_type = element;
    MetadataArray items;
    // The count fits the file, but a hostile one can still claim far more than it holds;
    // reserve a bounded amount up front and let real elements grow the vector.
    items.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(count, 1u << 20)));
    // One loop per element type, so the per-element work is a bounds check and a copy.
    switch (element) {
      case MetadataType::u8: numbers<std::uint8_t>(items, element, count); break;
      case MetadataType::i8: numbers<std::int8_t>(items, element, count); break;
      case MetadataType::u16: numbers<std::uint16_t>(items, element, count); break;
      case MetadataType::i16: numbers<std::int16_t>(items, element, count); break;
      case MetadataType::u32: numbers<std::uint32_t>(items, element, count); break;
      case MetadataType::i32: numbers<std::int32_t>(items, element, count); break;
      case MetadataType::u64: numbers<std::uint64_t>(items, element, count); break;
      case MetadataType::i64: numbers<std::int64_t>(items, element, count); break;
      case MetadataType::f32: numbers<float>(items, element, count); break;
      case MetadataType::f64: numbers<double>(items, element, count); break;
      case MetadataType::boolean:
        for (std::uint64_t i = 0; i < count; ++i) {
          auto& item = items.emplace_back();
          item.type = element;
          item.value.emplace<bool>(read_bool());
        }
        break;
      case MetadataType::string:
        for (std::uint64_t i = 0; i < count; ++i) {
          auto& item = items.emplace_back();
          item.type = element;
          item.value = cursor_.read_string("string value");
        }
        break;
      case MetadataType::array:
        for (std::uint64_t i = 0; i < count; ++i) {
          auto& item = items.emplace_back();
          item.type = element;
          array(item, depth + 1);
        }
        break;
    }
    value.value = std::move(items);
  }

  template <typename Raw>
  void numbers(MetadataArray& items, MetadataType type, std::uint64_t count) {
    for (std::uint64_t i = 0; i < count; ++i) {
      auto& item = items.emplace_back();
      item.type = type;
      item.value = static_cast<Stored<Raw>>(cursor_.read<Raw>("array element"));
    }
  }

  GgufCursor& cursor_;
};

}  // namespace

std::optional<MetadataType> gguf_value_type(std::uint32_t id) noexcept {
  if (id > static_cast<std::uint32_t>(MetadataType::f64)) return std::nullopt;
  return static_cast<MetadataType>(id);
}

MetadataValue read_gguf_value(GgufCursor& cursor, std::uint32_t type_id,
                              std::uint64_t type_offset) {
  const auto type = gguf_value_type(type_id);
  if (!type) {
    throw Error(ErrorCode::malformed, fmt::format("unknown metadata value type {}", type_id),
                {cursor.file(), {}, type_offset});
  }
  return ValueReader(cursor).read(*type, 0);
}

}  // namespace weightmap::format
