// Status codes, the thread-local last error, and the version: what every other C API file
// reports through.
#include <algorithm>
#include <new>
#include <string>

#include "capi/boundary.hpp"
#include "weightmap/error.hpp"
#include "weightmap/version.hpp"

namespace weightmap::capi {
namespace {

// Each thread sees the message of its own last failure: no lock, and no call on another
// thread can change the string a caller is reading.
thread_local std::string last_error;

weightmap_status status_of(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::io: return WEIGHTMAP_ERROR_IO;
    case ErrorCode::malformed: return WEIGHTMAP_ERROR_MALFORMED;
    case ErrorCode::unsupported: return WEIGHTMAP_ERROR_UNSUPPORTED;
    case ErrorCode::unknown_dtype: return WEIGHTMAP_ERROR_UNKNOWN_DTYPE;
    case ErrorCode::not_found: return WEIGHTMAP_ERROR_NOT_FOUND;
    case ErrorCode::duplicate: return WEIGHTMAP_ERROR_DUPLICATE;
    case ErrorCode::invalid_argument: return WEIGHTMAP_ERROR_INVALID_ARGUMENT;
    case ErrorCode::cancelled: return WEIGHTMAP_ERROR_CANCELLED;
  }
  return WEIGHTMAP_ERROR_INTERNAL;
}

}  // namespace

void set_last_error(const char* message) noexcept {
  try {
    last_error = message;
  } catch (...) {
    last_error.clear();  // out of memory for the message itself: an empty one beats none
  }
}

weightmap_status status_of_current_exception() noexcept {
  try {
    throw;
  } catch (const Error& error) {
    set_last_error(error.what());
    return status_of(error.code());
  } catch (const BadArgument& error) {
    set_last_error(error.what());
    return WEIGHTMAP_ERROR_BAD_ARGUMENT;
  } catch (const std::bad_alloc&) {
    set_last_error("out of memory");
    return WEIGHTMAP_ERROR_OUT_OF_MEMORY;
  } catch (const std::exception& error) {
    set_last_error(error.what());
    return WEIGHTMAP_ERROR_INTERNAL;
  } catch (...) {
    set_last_error("unknown error");
    return WEIGHTMAP_ERROR_INTERNAL;
  }
}

std::size_t shared_struct_bytes(std::size_t caller_size, std::size_t our_size, const char* call) {
  if (caller_size < sizeof(std::size_t)) {
    throw BadArgument(std::string(call) + ": struct_size is " + std::to_string(caller_size) +
                      "; set it to sizeof the struct");
  }
  return std::min(caller_size, our_size) - sizeof(std::size_t);
}

void throw_no_such_tensor(const char* name, const char* where) {
  throw Error(ErrorCode::not_found, std::string("no such tensor in ") + where,
              {.tensor = printable(name)});
}

void require_index(std::size_t index, std::size_t count, const char* call, const char* what) {
  if (index >= count) {
    throw BadArgument(std::string(call) + ": " + what + " index " + std::to_string(index) +
                      " is out of range (there are " + std::to_string(count) + ")");
  }
}

}  // namespace weightmap::capi

extern "C" {

const char* weightmap_status_name(weightmap_status status) {
  switch (status) {
    case WEIGHTMAP_OK: return "ok";
    case WEIGHTMAP_ERROR_IO: return "io";
    case WEIGHTMAP_ERROR_MALFORMED: return "malformed";
    case WEIGHTMAP_ERROR_UNSUPPORTED: return "unsupported";
    case WEIGHTMAP_ERROR_UNKNOWN_DTYPE: return "unknown_dtype";
    case WEIGHTMAP_ERROR_NOT_FOUND: return "not_found";
    case WEIGHTMAP_ERROR_DUPLICATE: return "duplicate";
    case WEIGHTMAP_ERROR_INVALID_ARGUMENT: return "invalid_argument";
    case WEIGHTMAP_ERROR_CANCELLED: return "cancelled";
    case WEIGHTMAP_ERROR_BAD_ARGUMENT: return "bad_argument";
    case WEIGHTMAP_ERROR_OUT_OF_MEMORY: return "out_of_memory";
    case WEIGHTMAP_ERROR_INTERNAL: return "internal";
  }
  return "unknown";
}

const char* weightmap_last_error(void) { return weightmap::capi::last_error.c_str(); }

// version_string() views a string literal, so its data is NUL-terminated and lives forever.
const char* weightmap_version(void) { return weightmap::version_string().data(); }

}  // extern "C"
