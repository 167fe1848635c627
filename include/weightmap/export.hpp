// What a shared libweightmap exports. The library is compiled with hidden symbols
// (-fvisibility=hidden); every public header puts its declarations between
// WEIGHTMAP_API_BEGIN and WEIGHTMAP_API_END, so the public API, and nothing declared under
// src/, is visible to programs that link it. Without effect on a static library's users.
#pragma once

#if defined(__GNUC__) || defined(__clang__)
#define WEIGHTMAP_API_BEGIN _Pragma("GCC visibility push(default)")
#define WEIGHTMAP_API_END _Pragma("GCC visibility pop")
#else
#define WEIGHTMAP_API_BEGIN
#define WEIGHTMAP_API_END
#endif
