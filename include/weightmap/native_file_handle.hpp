// The operating system's handle of an open file: a descriptor on POSIX systems. A port to
// another system (a HANDLE on Windows) changes this typedef, not the headers that hold one.
// Only src/io/ does anything with a handle; MappedFile keeps one for its page-cache calls.
#pragma once

#include "weightmap/export.hpp"

WEIGHTMAP_API_BEGIN
namespace weightmap {

using native_file_handle = int;
inline constexpr native_file_handle invalid_file_handle = -1;

}  // namespace weightmap
WEIGHTMAP_API_END
