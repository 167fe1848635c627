// The one error type of weightmap. Every failure on input (a malformed file, a missing
// tensor, an I/O error) is thrown as weightmap::Error; nothing in the library prints,
// exits or aborts on input.
#pragma once

#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <string_view>

#include "weightmap/export.hpp"

WEIGHTMAP_API_BEGIN
namespace weightmap {

enum class ErrorCode {
  io,                // open/read/stat/mmap failed, or the file is too short
  malformed,         // the bytes break the format's rules
  unsupported,       // a valid file using something weightmap does not support
  unknown_dtype,     // a type id or name that is not in the dtype table
  not_found,         // a tensor, key or file that was asked for is absent
  duplicate,         // the same tensor name twice
  invalid_argument,  // a caller's mistake (bad option, bad range)
  cancelled,         // the caller cancelled the operation (a load's progress callback)
};

// Where in which file a problem was found. Every field is optional.
struct ErrorContext {
  std::string file;
  std::string tensor;
  std::optional<std::uint64_t> offset;
};

class Error : public std::exception {
 public:
  Error(ErrorCode code, std::string message, ErrorContext context = {});

  ErrorCode code() const noexcept { return code_; }
  // The sentence alone, without file, tensor or offset.
  const std::string& message() const noexcept { return message_; }
  const ErrorContext& context() const noexcept { return context_; }
  const std::string& file() const noexcept { return context_.file; }
  const std::string& tensor() const noexcept { return context_.tensor; }
  std::optional<std::uint64_t> offset() const noexcept { return context_.offset; }

  // "FILE: message (tensor NAME, byte OFFSET)", parts omitted when unknown.
  const char* what() const noexcept override { return rendered_.c_str(); }

  // Adds context a lower layer did not know (the file name, the tensor). Fields that are
  // already set are kept: the innermost layer knows best.
  Error& add_context(const ErrorContext& outer);

 private:
  void render();

  ErrorCode code_;
  std::string message_;
  ErrorContext context_;
  std::string rendered_;
};

// A string from a file, made safe to put in a message: control bytes and invalid UTF-8 are
// escaped (\xNN) and anything past `max_bytes` is cut with "...". Names in hostile files
// must not be able to rewrite a user's terminal.
std::string printable(std::string_view text, std::size_t max_bytes = 200);

// True when `text` is well-formed UTF-8 (no overlongs, no surrogates).
bool is_valid_utf8(std::string_view text);

}  // namespace weightmap
WEIGHTMAP_API_END
