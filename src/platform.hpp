// The few compiler and host differences the portable code depends on, stated once. System
// calls are not here: they live in src/io's platform files (*_posix.cpp, *_linux.cpp; see
// docs/design.md, "Porting to another OS").
#pragma once

#include <bit>

// GCC and clang check unsigned arithmetic for overflow in one instruction
// (__builtin_mul_overflow, __builtin_add_overflow); checked_math.hpp uses them where this is
// 1 and plain comparisons elsewhere.
#if defined(__GNUC__) || defined(__clang__)
#define WEIGHTMAP_HAS_OVERFLOW_BUILTINS 1
#else
#define WEIGHTMAP_HAS_OVERFLOW_BUILTINS 0
#endif

// A symbol of a class the public headers name but do not define (the ggml adapter's
// detail::BindingState): the class is declared inside the headers' default-visibility region,
// so its out-of-line members would be exported from a shared library without this.
#if defined(__GNUC__) || defined(__clang__)
#define WEIGHTMAP_HIDDEN __attribute__((visibility("hidden")))
#else
#define WEIGHTMAP_HIDDEN
#endif

// Every file format weightmap reads stores little-endian numbers, and the readers copy them
// out with memcpy: a big-endian host would need byte swaps in every reader.
static_assert(std::endian::native == std::endian::little,
              "weightmap's readers assume a little-endian host");
