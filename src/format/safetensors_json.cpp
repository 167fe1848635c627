#include "format/safetensors_json.hpp"

#include <cstring>

#include "weightmap/error.hpp"

namespace weightmap::format::safetensors_json {

struct JsonScratch::Buffers {
  simdjson::ondemand::parser parser;
  // new char[] rather than std::vector: growing must not write the whole buffer once just
  // to have read_at write it again.
  std::unique_ptr<char[]> text;
  std::size_t capacity = 0;
};

namespace {

// Largest document whose buffers a thread keeps between calls. The parser needs about six
// bytes per input byte, so this keeps at most ~30 MiB per thread; 10,000-tensor headers
// are about 1 MiB.
constexpr std::size_t kKeptDocumentBytes = 4u << 20;

thread_local std::unique_ptr<JsonScratch::Buffers> kept_buffers;

}  // namespace

JsonScratch::JsonScratch()
    : buffers_(kept_buffers ? std::move(kept_buffers) : std::make_unique<Buffers>()) {}

JsonScratch::~JsonScratch() {
  if (buffers_->capacity <= kKeptDocumentBytes + simdjson::SIMDJSON_PADDING &&
      buffers_->parser.capacity() <= kKeptDocumentBytes) {
    kept_buffers = std::move(buffers_);
  }
}

simdjson::padded_string_view JsonScratch::load(const io::ByteSource& source, std::uint64_t offset,
                                               std::size_t size) {
  const std::size_t needed = size + simdjson::SIMDJSON_PADDING;
  if (buffers_->capacity < needed) {
    buffers_->text.reset();  // give the old buffer back before taking a bigger one
    buffers_->text.reset(new char[needed]);
    buffers_->capacity = needed;
  }
  char* text = buffers_->text.get();
  source.read_at(offset, std::span(reinterpret_cast<std::byte*>(text), size));
  std::memset(text + size, 0, simdjson::SIMDJSON_PADDING);
  return simdjson::padded_string_view(text, size, needed);
}

simdjson::ondemand::parser& JsonScratch::parser() noexcept { return buffers_->parser; }

std::optional<std::uint64_t> first_invalid_utf8(std::string_view text, std::uint64_t text_offset) {
  std::size_t i = 0;
  while (i < text.size()) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    std::size_t length = 2;
    while (length <= 4 && !is_valid_utf8(text.substr(i, length))) ++length;
    if (length > 4) return text_offset + i;
    i += length;
  }
  return std::nullopt;
}

std::string describe(simdjson::error_code error) {
  std::string text = simdjson::error_message(error);
  if (!text.empty() && text.back() == '.') text.pop_back();
  if (!text.empty()) text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
  return text;
}

std::string_view trim_token(std::string_view token) {
  while (!token.empty() && (token.back() == ' ' || token.back() == '\n' || token.back() == '\r' ||
                            token.back() == '\t')) {
    token.remove_suffix(1);
  }
  return token;
}

}  // namespace weightmap::format::safetensors_json
