// safetensors writer: an 8-byte little-endian header length, a JSON header (padded with
// spaces so the data area starts aligned), then every tensor back to back: the format forbids
// gaps between tensors, so only the data start can be aligned.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <numeric>
#include <unordered_set>

#include "format/buffered_writer.hpp"
#include "format/tensor_layout.hpp"
#include "format/writers.hpp"
#include "weightmap/error.hpp"
#include "weightmap/writer.hpp"

namespace weightmap {
namespace {

constexpr std::uint64_t kLengthBytes = 8;
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;  // what readers accept
constexpr std::uint32_t kMaxDataAlignment = 1u << 20;

// A JSON string literal. The input is valid UTF-8 (checked before), so only quotes,
// backslashes and control characters need escapes.
void append_json_string(std::string& out, std::string_view text) {
  out += '"';
  for (const char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          fmt::format_to(std::back_inserter(out), "\\u{:04x}", static_cast<unsigned>(c));
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

void check_metadata(const std::string& path,
                    const std::vector<std::pair<std::string, std::string>>& metadata) {
  std::unordered_set<std::string_view> keys;
  for (const auto& [key, value] : metadata) {
    if (!is_valid_utf8(key)) {
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("metadata key \"{}\" is not valid UTF-8", printable(key)), {path});
    }
    if (!is_valid_utf8(value)) {
      throw Error(
          ErrorCode::invalid_argument,
          fmt::format("the value of metadata key \"{}\" is not valid UTF-8", printable(key)),
          {path});
    }
    if (!keys.insert(key).second) {
      throw Error(ErrorCode::duplicate,
                  fmt::format("metadata key \"{}\" appears twice", printable(key)), {path});
    }
  }
}

// The order tensors go into the file: as given, or Hugging Face's writer's (element size
// descending, then name). Indices into the input.
std::vector<std::size_t> file_order(const std::vector<TensorToWrite>& tensors,
                                    const SafetensorsWriteOptions& options) {
  std::vector<std::size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  if (options.hugging_face_order) {
    const auto element_bytes = [&](std::size_t i) {
      const DTypeInfo& info = dtype_info(tensors[i].dtype);
      return static_cast<double>(info.block_bytes) / info.block_size;
    };
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      if (element_bytes(a) != element_bytes(b)) return element_bytes(a) > element_bytes(b);
      return tensors[a].name < tensors[b].name;
    });
  }
  return order;
}

std::string header_json(const std::vector<TensorToWrite>& tensors,
                        const std::vector<std::uint64_t>& bytes, std::span<const std::size_t> order,
                        const SafetensorsWriteOptions& options) {
  std::string json = "{";
  if (!options.metadata.empty()) {
    json += "\"__metadata__\":{";
    for (std::size_t i = 0; i < options.metadata.size(); ++i) {
      if (i > 0) json += ',';
      append_json_string(json, options.metadata[i].first);
      json += ':';
      append_json_string(json, options.metadata[i].second);
    }
    json += '}';
  }
  std::uint64_t offset = 0;
  for (const std::size_t i : order) {
    if (json.size() > 1) json += ',';
    append_json_string(json, tensors[i].name);
    fmt::format_to(std::back_inserter(json),
                   R"(:{{"dtype":"{}","shape":[{}],"data_offsets":[{},{}]}})",
                   dtype_info(tensors[i].dtype).safetensors_name, fmt::join(tensors[i].shape, ","),
                   offset, offset + bytes[i]);
    offset += bytes[i];
  }
  json += '}';
  return json;
}

}  // namespace

WrittenFile format::write_safetensors_to(io::ByteSink& sink, const std::string& path,
                                         const std::vector<TensorToWrite>& tensors,
                                         const TensorBytesSource& source,
                                         const SafetensorsWriteOptions& options) {
  format::check_alignment(path, "the safetensors data alignment", options.data_alignment, 8,
                          kMaxDataAlignment);
  const std::vector<std::uint64_t> bytes = format::validated_tensor_bytes(
      path, tensors, {.format_name = "safetensors", .needs_safetensors_name = true});
  for (const auto& tensor : tensors) {
    if (tensor.name == "__metadata__") {
      throw Error(ErrorCode::invalid_argument,
                  "the tensor name __metadata__ is reserved for the header's metadata",
                  {path, tensor.name});
    }
  }
  check_metadata(path, options.metadata);

  const std::vector<std::size_t> order = file_order(tensors, options);
  std::string json = header_json(tensors, bytes, order, options);
  const std::uint64_t alignment = options.data_alignment;
  json.append((alignment - (kLengthBytes + json.size()) % alignment) % alignment, ' ');
  if (json.size() > kMaxHeaderBytes) {
    throw Error(ErrorCode::invalid_argument,
                fmt::format("the header would be {} bytes; safetensors readers accept at most {}",
                            json.size(), kMaxHeaderBytes),
                {path});
  }

  WrittenFile written;
  written.data_offset = kLengthBytes + json.size();
  written.tensor_offsets.resize(tensors.size());
  format::BufferedWriter file(sink, path, options.chunk_bytes);
  std::array<std::byte, kLengthBytes> length{};
  for (std::size_t i = 0; i < kLengthBytes; ++i) {
    length[i] = static_cast<std::byte>(json.size() >> (8 * i));
  }
  file.append(length);
  file.append(std::as_bytes(std::span(json)));
  for (const std::size_t i : order) {
    written.tensor_offsets[i] = file.offset();
    try {
      file.append_generated(bytes[i], [&](std::uint64_t offset, std::span<std::byte> out) {
        source(i, offset, out);
      });
    } catch (Error& error) {
      error.add_context({path, printable(tensors[i].name)});
      throw;
    }
  }
  written.size = file.offset();
  file.finish();
  return written;
}

}  // namespace weightmap
