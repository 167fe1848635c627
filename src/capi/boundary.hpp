// The C API's boundary: every entry point runs its body through guarded(), which turns every
// exception into a status code and this thread's last error message, so none crosses into C.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

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

// How many bytes after struct_size a sized struct of the caller's and ours have in common;
// throws BadArgument when the caller's struct_size cannot hold even itself.
std::size_t shared_struct_bytes(std::size_t caller_size, std::size_t our_size, const char* call);

// Copies `full` into the caller's struct up to its struct_size (which is kept), so a caller
// compiled against an older, smaller struct gets the fields it knows and nothing past them.
template <typename Struct>
void fill_sized(Struct* out, const Struct& full, const char* call) {
  require(out, call, "the output struct");
  std::memcpy(reinterpret_cast<char*>(out) + sizeof(std::size_t),
              reinterpret_cast<const char*>(&full) + sizeof(std::size_t),
              shared_struct_bytes(out->struct_size, sizeof(Struct), call));
}

// Reads the caller's struct up to its struct_size over `defaults` (fields it lacks keep them).
template <typename Struct>
Struct read_sized(const Struct* in, Struct defaults, const char* call) {
  require(in, call, "the input struct");
  std::memcpy(reinterpret_cast<char*>(&defaults) + sizeof(std::size_t),
              reinterpret_cast<const char*>(in) + sizeof(std::size_t),
              shared_struct_bytes(in->struct_size, sizeof(Struct), call));
  defaults.struct_size = sizeof(Struct);
  return defaults;
}

// The "how many" calls (weightmap_model_tensor_count, ...): `handle` and `count` must not be
// NULL; then *count = size_of(*handle).
template <typename Handle, typename SizeOf>
weightmap_status count_of(const char* call, const Handle* handle, const char* handle_name,
                          std::size_t* count, SizeOf size_of) noexcept {
  return guarded([&] {
    require(handle, call, handle_name);
    require(count, call, "count");
    *count = size_of(*handle);
  });
}

// Throws Error(not_found) "no such tensor in `where`" naming the tensor `name`.
[[noreturn]] void throw_no_such_tensor(const char* name, const char* where);

// The index of `found` among `all` (it points into `all`), or Error(not_found) "no such
// tensor in `where`" naming `name` when it is NULL.
template <typename T>
std::size_t index_of_found(const T* found, const std::vector<T>& all, const char* name,
                           const char* where) {
  if (found == nullptr) throw_no_such_tensor(name, where);
  return static_cast<std::size_t>(found - all.data());
}

// Throws BadArgument when index >= count.
void require_index(std::size_t index, std::size_t count, const char* call, const char* what);

}  // namespace weightmap::capi
