// What the two safetensors JSON readers (the file header and the shard index) share: a
// parser and input buffer reused across calls, and turning simdjson's error codes into
// weightmap::Error sentences.
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "io/byte_source.hpp"

namespace weightmap::format::safetensors_json {

// The JSON bytes of one document plus the parser that reads them. Opening a model parses
// one header per file, often thousands of times in a process's life; a fresh parser and
// buffer per header cost page faults that take longer than the parse itself, so each thread
// keeps one set for headers up to a few MiB and gives bigger ones back at once.
class JsonScratch {
 public:
  JsonScratch();
  ~JsonScratch();
  JsonScratch(const JsonScratch&) = delete;
  JsonScratch& operator=(const JsonScratch&) = delete;

  // Reads [offset, offset + size) of `source` into the buffer, padded as simdjson needs.
  simdjson::padded_string_view load(const io::ByteSource& source, std::uint64_t offset,
                                    std::size_t size);
  simdjson::ondemand::parser& parser() noexcept;

  struct Buffers;

 private:
  std::unique_ptr<Buffers> buffers_;
};

// The byte offset in the file of the first byte that breaks UTF-8 in `text`, which starts
// at file offset `text_offset`; nullopt when the text is valid.
std::optional<std::uint64_t> first_invalid_utf8(std::string_view text, std::uint64_t text_offset);

// simdjson's description of `error`, as the end of a sentence.
std::string describe(simdjson::error_code error);

// Cuts JSON whitespace off the end of a raw token.
std::string_view trim_token(std::string_view token);

}  // namespace weightmap::format::safetensors_json
