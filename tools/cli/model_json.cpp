#include "cli/model_json.hpp"

#include <fmt/format.h>

#include <cmath>
#include <ostream>
#include <type_traits>
#include <unordered_set>
#include <variant>

#include "weightmap/error.hpp"

namespace weightmap::cli {
namespace {

constexpr int kMaxJsonDepth = 64;
constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";

// Length of the valid UTF-8 sequence at the start of `text`, 0 when there is none. UTF-8 is
// prefix-free, so the shortest valid prefix is the sequence.
std::size_t utf8_sequence_length(std::string_view text) {
  for (std::size_t length = 1; length <= 4 && length <= text.size(); ++length) {
    if (is_valid_utf8(text.substr(0, length))) return length;
  }
  return 0;
}

template <typename Float>
std::string json_float(Float value) {
  if (std::isnan(value)) return "\"nan\"";
  if (std::isinf(value)) return value > 0 ? "\"inf\"" : "\"-inf\"";
  // fmt's default is the shortest text that parses back to the same value of this type.
  return fmt::format("{}", value);
}

void append_value(std::string& out, const MetadataValue& value, MetadataType type, int depth) {
  if (depth > kMaxJsonDepth) {
    throw Error(
        ErrorCode::unsupported,
        fmt::format("metadata arrays nested deeper than {} levels cannot be written as JSON",
                    kMaxJsonDepth));
  }
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string>) {
          out += json_string(v);
        } else if constexpr (std::is_same_v<T, double>) {
          out += type == MetadataType::f32 ? json_float(static_cast<float>(v)) : json_float(v);
        } else if constexpr (std::is_same_v<T, bool>) {
          out += v ? "true" : "false";
        } else if constexpr (std::is_same_v<T, MetadataArray>) {
          out += '[';
          for (std::size_t i = 0; i < v.size(); ++i) {
            if (i > 0) out += ", ";
            append_value(out, v[i], v[i].type, depth + 1);
          }
          out += ']';
        } else {
          out += fmt::format("{}", v);
        }
      },
      value.value);
}

}  // namespace

std::string json_string(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out += '"';
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      const std::size_t length = utf8_sequence_length(text.substr(i));
      if (length == 0) {
        out += kReplacementCharacter;
        ++i;
      } else {
        out.append(text.substr(i, length));
        i += length;
      }
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7F) {
          out += fmt::format("\\u{:04x}", c);
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
  out += '"';
  return out;
}

std::string json_value(const MetadataValue& value) {
  std::string out;
  append_value(out, value, value.type, 0);
  return out;
}

void write_model_json(const Model& model, const std::vector<const TensorInfo*>& tensors,
                      std::ostream& out) {
  out << "{\n  \"files\": [";
  const auto& files = model.files();
  for (std::size_t i = 0; i < files.size(); ++i) {
    out << (i == 0 ? "\n" : ",\n")
        << fmt::format(R"(    {{"path": {}, "format": "{}", "size": {}}})",
                       json_string(files[i].path), file_format_name(files[i].format),
                       files[i].size);
  }
  out << (files.empty() ? "],\n" : "\n  ],\n");

  out << "  \"tensors\": [";
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const TensorInfo& t = *tensors[i];
    out << (i == 0 ? "\n" : ",\n")
        << fmt::format(
               R"(    {{"name": {}, "dtype": "{}", "shape": [{}], "file": {}, "offset": {}, )"
               R"("nbytes": {}}})",
               json_string(t.name), dtype_name(t.dtype), fmt::join(t.shape, ", "), t.file, t.offset,
               t.nbytes);
  }
  out << (tensors.empty() ? "],\n" : "\n  ],\n");

  out << "  \"metadata\": {";
  std::unordered_set<std::string_view> written;
  for (const auto& entry : model.metadata()) {
    if (!written.insert(entry.key).second) continue;  // the first file's value wins
    std::string value;
    try {
      value = json_value(entry.value);
    } catch (const Error& e) {
      throw Error(e.code(),
                  fmt::format("metadata key \"{}\": {}", printable(entry.key), e.message()),
                  {files.at(entry.file).path});
    }
    out << (written.size() == 1 ? "\n" : ",\n") << "    " << json_string(entry.key) << ": "
        << value;
  }
  out << (written.empty() ? "}\n" : "\n  }\n") << "}\n";
}

}  // namespace weightmap::cli
