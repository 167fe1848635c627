// The C API's boundary: every entry point runs its body through guarded(), which turns every
// exception into a status code and this thread's last error message, so none crosses into C.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string>
#include <utility>

#include "weightmap/weightmap.h"

namespace weightmap::capi {

// A caller's mistake the C layer finds itself (a NULL pointer, an index out of range, a
// struct_size too small): WEIGHTMAP_ERROR_BAD_ARGUMENT.
class BadArgument : public std::exception {
 public:
  explicit BadArgument(std::string message) : message_(std::move(message)) {}
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  std::string message_;
};

// Records the message for weightmap_last_error(); never throws.
void set_last_error(const char* message) noexcept;

// Maps the exception in flight to a status (call inside a catch block only).
weightmap_status status_of_current_exception() noexcept;

template <typename Body>
weightmap_status guarded(Body&& body) noexcept {
  try {
    std::forward<Body>(body)();
    return WEIGHTMAP_OK;
  } catch (...) {
    return status_of_current_exception();
  }
}

// Throws BadArgument naming the call and the argument when `pointer` is NULL.
template <typename T>
T* require(T* pointer, const char* call, const char* argument) {
  if (pointer == nullptr) throw BadArgument(std::string(call) + ": " + argument + " is NULL");
  return pointer;
}

// Copies `full` into the caller's struct up to its struct_size (which is kept), so a caller
// compiled against an older, smaller struct gets the fields it knows and nothing past them.
template <typename Struct>
void fill_sized(Struct* out, const Struct& full, const char* call) {
  require(out, call, "the output struct");
  const std::size_t size = out->struct_size;
  if (size < sizeof(std::size_t)) {
    throw BadArgument(std::string(call) + ": struct_size is " + std::to_string(size) +
                      "; set it to sizeof the struct");
  }
  const std::size_t n = std::min(size, sizeof(Struct)) - sizeof(std::size_t);
  std::memcpy(reinterpret_cast<char*>(out) + sizeof(std::size_t),
              reinterpret_cast<const char*>(&full) + sizeof(std::size_t), n);
}

// Reads the caller's struct up to its struct_size over `defaults` (fields it lacks keep them).
template <typename Struct>
Struct read_sized(const Struct* in, Struct defaults, const char* call) {
  require(in, call, "the input struct");
  const std::size_t size = in->struct_size;
  if (size < sizeof(std::size_t)) {
    throw BadArgument(std::string(call) + ": struct_size is " + std::to_string(size) +
                      "; set it to sizeof the struct");
  }
  std::memcpy(reinterpret_cast<char*>(&defaults) + sizeof(std::size_t),
              reinterpret_cast<const char*>(in) + sizeof(std::size_t),
              std::min(size, sizeof(Struct)) - sizeof(std::size_t));
  defaults.struct_size = sizeof(Struct);
  return defaults;
}

// Throws BadArgument when index >= count.
void require_index(std::size_t index, std::size_t count, const char* call, const char* what);

}  // namespace weightmap::capi
