// Builds safetensors bytes and files for tests: well-formed ones from a list of tensors, and
// broken ones from any header text and any declared header length.
#pragma once

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "support/temp_dir.hpp"  // where these files go; tests written before it had its own header
#include "weightmap/dtype.hpp"

namespace weightmap::testing {

using Bytes = std::vector<std::byte>;

inline Bytes to_bytes(std::string_view text) {
  Bytes out(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) out[i] = static_cast<std::byte>(text[i]);
  return out;
}

// A JSON string literal, quotes included. Non-ASCII bytes pass through unchanged, so a test
// can also write invalid UTF-8.
inline std::string json_quote(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20) {
      out += fmt::format("\\u{:04x}", byte);
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// The file: declared header length, the header text, then `data`.
inline Bytes safetensors_file(std::uint64_t declared_length, std::string_view header,
                              const Bytes& data = {}) {
  Bytes out;
  for (int i = 0; i < 8; ++i) {
    out.push_back(static_cast<std::byte>((declared_length >> (8 * i)) & 0xFF));
  }
  const Bytes text = to_bytes(header);
  out.insert(out.end(), text.begin(), text.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

// A header exactly as given, its true length, and `data_bytes` bytes of data (byte i of the
// data area holds i mod 251, so tests can tell where a tensor points).
inline Bytes safetensors_file(std::string_view header, std::uint64_t data_bytes) {
  Bytes data(data_bytes);
  for (std::uint64_t i = 0; i < data_bytes; ++i) data[i] = static_cast<std::byte>(i % 251);
  return safetensors_file(header.size(), header, data);
}

struct TensorSpec {
  std::string name;
  std::string dtype = "F32";
  std::vector<std::uint64_t> shape;
  // Bytes of data; by default what dtype x shape takes.
  std::optional<std::uint64_t> nbytes = std::nullopt;
};

inline std::uint64_t spec_bytes(const TensorSpec& spec) {
  if (spec.nbytes) return *spec.nbytes;
  std::uint64_t elements = 1;
  for (const auto dim : spec.shape) elements *= dim;
  const auto bytes = dtype_bytes_for(dtype_from_safetensors_name(spec.dtype), elements);
  if (!bytes) throw std::invalid_argument("TensorSpec: shape does not fill whole bytes");
  return *bytes;
}

// A well-formed file: tensors laid out back to back in the order given, each tensor's bytes
// filled with its position in the list plus one.
struct SafetensorsBuilder {
  std::vector<TensorSpec> tensors;
  std::vector<std::pair<std::string, std::string>> metadata;
  // Pad the header with spaces to a multiple of this, as the python writer does (8).
  std::size_t header_alignment = 8;

  SafetensorsBuilder& add(std::string name, std::string dtype, std::vector<std::uint64_t> shape) {
    tensors.push_back({std::move(name), std::move(dtype), std::move(shape)});
    return *this;
  }

  std::string header() const {
    std::string out = "{";
    bool first = true;
    if (!metadata.empty()) {
      out += "\"__metadata__\":{";
      for (std::size_t i = 0; i < metadata.size(); ++i) {
        if (i != 0) out += ",";
        out += json_quote(metadata[i].first) + ":" + json_quote(metadata[i].second);
      }
      out += "}";
      first = false;
    }
    std::uint64_t offset = 0;
    for (const auto& tensor : tensors) {
      const std::uint64_t bytes = spec_bytes(tensor);
      if (!first) out += ",";
      first = false;
      out += fmt::format("{}:{{\"dtype\":{},\"shape\":[{}],\"data_offsets\":[{},{}]}}",
                         json_quote(tensor.name), json_quote(tensor.dtype),
                         fmt::join(tensor.shape, ","), offset, offset + bytes);
      offset += bytes;
    }
    out += "}";
    while (header_alignment > 1 && out.size() % header_alignment != 0) out += ' ';
    return out;
  }

  Bytes bytes() const {
    Bytes data;
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      data.insert(data.end(), spec_bytes(tensors[i]), static_cast<std::byte>(i + 1));
    }
    const std::string text = header();
    return safetensors_file(text.size(), text, data);
  }
};

inline void write_file(const std::filesystem::path& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

inline void write_file(const std::filesystem::path& path, std::string_view text) {
  write_file(path, to_bytes(text));
}

}  // namespace weightmap::testing
