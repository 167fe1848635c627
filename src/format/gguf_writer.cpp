// GGUF v3 writer: magic, version, counts, typed key/values, tensor infos (dimensions innermost
// first, offsets relative to the data section), zero padding to the alignment, then each
// tensor's bytes padded with zeros to the next multiple of the alignment.
#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <unordered_set>

#include "format/buffered_writer.hpp"
#include "format/tensor_layout.hpp"
#include "format/writers.hpp"
#include "weightmap/error.hpp"
#include "weightmap/writer.hpp"

namespace weightmap {
namespace {

constexpr std::string_view kAlignmentKey = "general.alignment";
constexpr std::uint32_t kDefaultAlignment = 32;
constexpr std::uint32_t kMaxAlignment = 1u << 20;
constexpr std::uint32_t kVersion = 3;
constexpr std::size_t kMaxDims = 4;  // GGML_MAX_DIMS

template <typename T>
void put(std::string& out, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));  // x86/ARM: little-endian, as GGUF is
  out.append(bytes, sizeof(T));
}

void put_string(std::string& out, std::string_view text) {
  put<std::uint64_t>(out, text.size());
  out += text;
}

// Serializes typed metadata, checking that each value holds what its type says.
class MetadataEncoder {
 public:
  MetadataEncoder(const std::string& path, std::string& out) : path_(path), out_(out) {}

  void entry(const std::string& key, const MetadataValue& value) {
    key_ = &key;
    put_string(out_, key);
    put<std::uint32_t>(out_, static_cast<std::uint32_t>(value.type));
    payload(value);
  }

 private:
  [[noreturn]] void fail(const std::string& sentence) const {
    throw Error(ErrorCode::invalid_argument,
                fmt::format("metadata key \"{}\": {}", printable(*key_), sentence), {path_});
  }

  template <typename Stored>
  const Stored& held(const MetadataValue& value) const {
    const auto* stored = std::get_if<Stored>(&value.value);
    if (stored == nullptr) {
      fail(fmt::format("a {} value must hold {}", metadata_type_name(value.type),
                       std::is_same_v<Stored, std::uint64_t>  ? "an unsigned integer"
                       : std::is_same_v<Stored, std::int64_t> ? "a signed integer"
                       : std::is_same_v<Stored, double>       ? "a floating-point number"
                       : std::is_same_v<Stored, bool>         ? "a bool"
                       : std::is_same_v<Stored, std::string>  ? "a string"
                                                              : "an array"));
    }
    return *stored;
  }

  template <typename T>
  void put_unsigned(const MetadataValue& value) {
    const std::uint64_t v = held<std::uint64_t>(value);
    if (v > std::numeric_limits<T>::max()) {
      fail(fmt::format("{} does not fit a {}", v, metadata_type_name(value.type)));
    }
    put<T>(out_, static_cast<T>(v));
  }

  template <typename T>
  void put_signed(const MetadataValue& value) {
    const std::int64_t v = held<std::int64_t>(value);
    if (v < std::numeric_limits<T>::min() || v > std::numeric_limits<T>::max()) {
      fail(fmt::format("{} does not fit an {}", v, metadata_type_name(value.type)));
    }
    put<T>(out_, static_cast<T>(v));
  }

  void payload(const MetadataValue& value) {
    switch (value.type) {
      case MetadataType::u8: put_unsigned<std::uint8_t>(value); break;
      case MetadataType::u16: put_unsigned<std::uint16_t>(value); break;
      case MetadataType::u32: put_unsigned<std::uint32_t>(value); break;
      case MetadataType::u64: put_unsigned<std::uint64_t>(value); break;
      case MetadataType::i8: put_signed<std::int8_t>(value); break;
      case MetadataType::i16: put_signed<std::int16_t>(value); break;
      case MetadataType::i32: put_signed<std::int32_t>(value); break;
      case MetadataType::i64: put_signed<std::int64_t>(value); break;
      case MetadataType::f32: {
        const double v = held<double>(value);
        if (std::isfinite(v) && std::fabs(v) > std::numeric_limits<float>::max()) {
          fail(fmt::format("{} does not fit an f32", v));
        }
        put<float>(out_, static_cast<float>(v));
        break;
      }
      case MetadataType::f64: put<double>(out_, held<double>(value)); break;
      case MetadataType::boolean: put<std::uint8_t>(out_, held<bool>(value) ? 1 : 0); break;
      case MetadataType::string: put_string(out_, held<std::string>(value)); break;
      case MetadataType::array: {
        // An array item that is itself an array is written the same way: element type,
        // count, items.
        const MetadataArray& items = held<MetadataArray>(value);
        put<std::uint32_t>(out_, static_cast<std::uint32_t>(value.element_type));
        put<std::uint64_t>(out_, items.size());
        for (std::size_t i = 0; i < items.size(); ++i) {
          if (items[i].type != value.element_type) {
            fail(fmt::format("array item {} is a {}, not a {} like the array says", i,
                             metadata_type_name(items[i].type),
                             metadata_type_name(value.element_type)));
          }
          payload(items[i]);
        }
        break;
      }
      default: fail(fmt::format("unknown value type {}", static_cast<std::uint32_t>(value.type)));
    }
  }

  const std::string& path_;
  std::string& out_;
  const std::string* key_ = nullptr;
};

// The alignment the file will use, and whether the writer must add general.alignment.
struct AlignmentChoice {
  std::uint32_t alignment = kDefaultAlignment;
  bool add_key = false;
};

AlignmentChoice choose_alignment(const std::string& path, const GgufWriteOptions& options) {
  std::optional<std::uint64_t> from_metadata;
  for (const auto& [key, value] : options.metadata) {
    if (key != kAlignmentKey) continue;
    const auto* v = std::get_if<std::uint64_t>(&value.value);
    if (value.type != MetadataType::u32 || v == nullptr) {
      throw Error(
          ErrorCode::invalid_argument,
          fmt::format("{} must be a u32, not a {}", kAlignmentKey, metadata_type_name(value.type)),
          {path});
    }
    from_metadata = *v;
    format::check_alignment(path, kAlignmentKey, *v, 1, kMaxAlignment);
  }
  if (options.alignment) {
    format::check_alignment(path, "the GGUF alignment", *options.alignment, 1, kMaxAlignment);
    if (from_metadata && *from_metadata != *options.alignment) {
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("the metadata says {} = {} but the alignment option is {}",
                              kAlignmentKey, *from_metadata, *options.alignment),
                  {path});
    }
  }
  AlignmentChoice choice;
  if (from_metadata) {
    choice.alignment = static_cast<std::uint32_t>(*from_metadata);
  } else if (options.alignment) {
    choice.alignment = *options.alignment;
    choice.add_key = choice.alignment != kDefaultAlignment;
  }
  return choice;
}

void check_keys(const std::string& path, const GgufWriteOptions& options) {
  std::unordered_set<std::string_view> keys;
  for (const auto& [key, value] : options.metadata) {
    if (key.empty()) throw Error(ErrorCode::invalid_argument, "a metadata key is empty", {path});
    if (!is_valid_utf8(key)) {
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("metadata key \"{}\" is not valid UTF-8", printable(key)), {path});
    }
    if (!keys.insert(key).second) {
      throw Error(ErrorCode::duplicate,
                  fmt::format("metadata key \"{}\" appears twice", printable(key)), {path});
    }
  }
}

std::uint64_t padding_to(std::uint64_t offset, std::uint64_t alignment) {
  return (alignment - offset % alignment) % alignment;
}

}  // namespace

WrittenFile format::write_gguf_to(io::ByteSink& sink, const std::string& path,
                                  const std::vector<TensorToWrite>& tensors,
                                  const TensorBytesSource& source,
                                  const GgufWriteOptions& options) {
  check_keys(path, options);
  const AlignmentChoice choice = choose_alignment(path, options);
  const std::uint64_t alignment = choice.alignment;
  const std::vector<std::uint64_t> bytes = format::validated_tensor_bytes(
      path, tensors,
      {.format_name = "GGUF", .needs_ggml_type = true, .whole_rows = true, .max_dims = kMaxDims});

  std::string header = "GGUF";
  put<std::uint32_t>(header, kVersion);
  put<std::uint64_t>(header, tensors.size());
  put<std::uint64_t>(header, options.metadata.size() + (choice.add_key ? 1 : 0));
  MetadataEncoder encoder(path, header);
  for (const auto& [key, value] : options.metadata) encoder.entry(key, value);
  if (choice.add_key) {
    const std::string key(kAlignmentKey);
    encoder.entry(key, {.type = MetadataType::u32, .value = std::uint64_t{alignment}});
  }

  std::vector<std::uint64_t> relative(tensors.size());
  std::uint64_t offset = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const TensorToWrite& tensor = tensors[i];
    relative[i] = offset;
    put_string(header, tensor.name);
    put<std::uint32_t>(header, static_cast<std::uint32_t>(tensor.shape.size()));
    for (auto d = tensor.shape.rbegin(); d != tensor.shape.rend(); ++d) {
      put<std::uint64_t>(header, *d);
    }
    put<std::uint32_t>(header, static_cast<std::uint32_t>(tensor.dtype));
    put<std::uint64_t>(header, offset);
    const std::uint64_t padded = bytes[i] + padding_to(bytes[i], alignment);
    if (offset > std::numeric_limits<std::uint64_t>::max() - padded) {
      throw Error(ErrorCode::invalid_argument, "the tensors add up to more than 2^64 bytes",
                  {path, printable(tensor.name)});
    }
    offset += padded;
  }
  header.append(padding_to(header.size(), alignment), '\0');

  WrittenFile written;
  written.data_offset = header.size();
  written.tensor_offsets.reserve(tensors.size());
  format::BufferedWriter file(sink, path, options.chunk_bytes);
  file.append(std::as_bytes(std::span(header)));
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    written.tensor_offsets.push_back(written.data_offset + relative[i]);
    try {
      file.append_generated(
          bytes[i], [&](std::uint64_t at, std::span<std::byte> out) { source(i, at, out); });
    } catch (Error& error) {
      error.add_context({path, printable(tensors[i].name)});
      throw;
    }
    file.append_zeros(padding_to(bytes[i], alignment));
  }
  written.size = file.offset();
  file.finish();
  return written;
}

}  // namespace weightmap
