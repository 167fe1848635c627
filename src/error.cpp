#include "weightmap/error.hpp"

#include <fmt/format.h>
#include <simdjson.h>

#include <utility>

namespace weightmap {

Error::Error(ErrorCode code, std::string message, ErrorContext context)
    : code_(code), message_(std::move(message)), context_(std::move(context)) {
  render();
}

Error& Error::add_context(const ErrorContext& outer) {
  if (context_.file.empty()) context_.file = outer.file;
  if (context_.tensor.empty()) context_.tensor = outer.tensor;
  if (!context_.offset) context_.offset = outer.offset;
  render();
  return *this;
}

void Error::render() {
  std::string out;
  if (!context_.file.empty()) out = context_.file + ": ";
  out += message_;
  if (!context_.tensor.empty() && context_.offset) {
    out += fmt::format(" (tensor {}, byte {})", context_.tensor, *context_.offset);
  } else if (!context_.tensor.empty()) {
    out += fmt::format(" (tensor {})", context_.tensor);
  } else if (context_.offset) {
    out += fmt::format(" (byte {})", *context_.offset);
  }
  rendered_ = std::move(out);
}

}  // namespace weightmap

namespace weightmap {
namespace {

// Length of the valid UTF-8 sequence starting at text[i], or 0 if it is not valid.
std::size_t utf8_sequence_length(std::string_view text, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(i);
  std::size_t length = 0;
  std::uint32_t min_code = 0;
  std::uint32_t code = 0;
  if (lead < 0x80) return 1;
  if ((lead & 0xE0) == 0xC0) {
    length = 2, min_code = 0x80, code = lead & 0x1F;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3, min_code = 0x800, code = lead & 0x0F;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4, min_code = 0x10000, code = lead & 0x07;
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  for (std::size_t k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    code = (code << 6) | (byte(i + k) & 0x3F);
  }
  if (code < min_code || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return 0;
  return length;
}

}  // namespace

std::string printable(std::string_view text, std::size_t max_bytes) {
  std::string out;
  std::size_t i = 0;
  while (i < text.size()) {
    if (out.size() >= max_bytes) {
      out += "...";
      break;
    }
    const auto c = static_cast<unsigned char>(text[i]);
    const std::size_t length = utf8_sequence_length(text, i);
    if (length == 0 || c < 0x20 || c == 0x7F) {
      out += fmt::format("\\x{:02x}", c);
      ++i;
    } else {
      out.append(text.substr(i, length));
      i += length;
    }
  }
  return out;
}

bool is_valid_utf8(std::string_view text) {
  // Names are checked on the hot path of time-to-ready (every tensor of every file):
  // simdjson's validator is vectorised and applies the same rules as the scalar one above.
  return simdjson::validate_utf8(text.data(), text.size());
}

}  // namespace weightmap
