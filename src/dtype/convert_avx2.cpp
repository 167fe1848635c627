// AVX2 + F16C kernels. Only these functions carry the target attribute, so the rest of the
// library stays baseline x86-64 and this code runs only after the dispatcher has seen the CPU
// features. Every kernel handles its tail by running the same vector code on a zero-padded
// copy on the stack, so tails round exactly as the body does.
#include <cstring>

#include "dtype/convert_impl.hpp"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define WEIGHTMAP_HAVE_AVX2_KERNELS 1
#include <cpuid.h>
#include <immintrin.h>
#endif

namespace weightmap::detail {

#if defined(WEIGHTMAP_HAVE_AVX2_KERNELS)

#define WEIGHTMAP_AVX2 __attribute__((target("avx2,f16c")))

namespace {

// Elements per step of every loop below: two 256-bit vectors of f32 results or inputs.
constexpr std::size_t kStep = 16;

// Runs `body` (which converts exactly kStep elements) over a tail of n < kStep elements via
// zero-padded stack buffers.
template <std::size_t SrcSize, std::size_t DstSize, typename Body>
WEIGHTMAP_AVX2 inline void run_tail(const std::byte* src, std::byte* dst, std::size_t n,
                                    Body body) {
  alignas(32) std::byte in[kStep * SrcSize] = {};
  alignas(32) std::byte out[kStep * DstSize];
  std::memcpy(in, src, n * SrcSize);
  body(in, out);
  std::memcpy(dst, out, n * DstSize);
}

// bf16 rounding of 8 f32 bit patterns (ties to even, NaN kept and made quiet), each result in
// the low 16 bits of its 32-bit lane. Matches f32_bits_to_bf16_bits.
WEIGHTMAP_AVX2 inline __m256i round_to_bf16_lanes(__m256i f) {
  const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(f, 16), _mm256_set1_epi32(1));
  const __m256i rounded =
      _mm256_srli_epi32(_mm256_add_epi32(f, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), odd)), 16);
  const __m256i magnitude = _mm256_and_si256(f, _mm256_set1_epi32(0x7fffffff));
  const __m256i is_nan = _mm256_cmpgt_epi32(magnitude, _mm256_set1_epi32(0x7f800000));
  const __m256i quiet_nan = _mm256_or_si256(_mm256_srli_epi32(f, 16), _mm256_set1_epi32(0x40));
  return _mm256_blendv_epi8(rounded, quiet_nan, is_nan);
}

// Packs two vectors of 16-bit-in-32-bit lanes into 16 consecutive u16s.
WEIGHTMAP_AVX2 inline __m256i pack_lanes_to_u16(__m256i low, __m256i high) {
  // packus works within 128-bit halves: [l0-3 h0-3 | l4-7 h4-7]; reorder the 64-bit quarters.
  return _mm256_permute4x64_epi64(_mm256_packus_epi32(low, high), 0xd8);
}

WEIGHTMAP_AVX2 inline __m256 load_f16x8_as_f32(const std::byte* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

WEIGHTMAP_AVX2 inline __m256i load_bf16x8_as_f32_bits(const std::byte* p) {
  return _mm256_slli_epi32(
      _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16);
}

// Stores: plain unaligned ones, or (Stream) non-temporal ones to a 32-byte aligned address.
// Streaming skips reading each destination line into the cache before overwriting it, which
// on big outputs saves a third to a half of the memory traffic.
template <bool Stream>
WEIGHTMAP_AVX2 inline void store256(std::byte* p, __m256i v) {
  if constexpr (Stream) {
    _mm256_stream_si256(reinterpret_cast<__m256i*>(p), v);
  } else {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v);
  }
}

template <bool Stream>
WEIGHTMAP_AVX2 inline void store128(std::byte* p, __m128i v) {
  if constexpr (Stream) {
    _mm_stream_si128(reinterpret_cast<__m128i*>(p), v);
  } else {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), v);
  }
}

template <bool Stream>
WEIGHTMAP_AVX2 inline void store_f32x8_as_f16(std::byte* p, __m256 v) {
  store128<Stream>(p, _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

// ---- one step of kStep elements each ----

struct F16ToF32 {
  template <bool Stream>
  WEIGHTMAP_AVX2 static void step(const std::byte* src, std::byte* dst) {
    store256<Stream>(dst, _mm256_castps_si256(load_f16x8_as_f32(src)));
    store256<Stream>(dst + 32, _mm256_castps_si256(load_f16x8_as_f32(src + 16)));
  }
};

struct Bf16ToF32 {
  template <bool Stream>
  WEIGHTMAP_AVX2 static void step(const std::byte* src, std::byte* dst) {
    store256<Stream>(dst, load_bf16x8_as_f32_bits(src));
    store256<Stream>(dst + 32, load_bf16x8_as_f32_bits(src + 16));
  }
};

struct F32ToF16 {
  template <bool Stream>
  WEIGHTMAP_AVX2 static void step(const std::byte* src, std::byte* dst) {
    store_f32x8_as_f16<Stream>(dst, _mm256_loadu_ps(reinterpret_cast<const float*>(src)));
    store_f32x8_as_f16<Stream>(dst + 16, _mm256_loadu_ps(reinterpret_cast<const float*>(src + 32)));
  }
};

struct F32ToBf16 {
  template <bool Stream>
  WEIGHTMAP_AVX2 static void step(const std::byte* src, std::byte* dst) {
    const __m256i low = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src));
    const __m256i high = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 32));
    store256<Stream>(dst, pack_lanes_to_u16(round_to_bf16_lanes(low), round_to_bf16_lanes(high)));
  }
};

struct F16ToBf16 {
  template <bool Stream>
  WEIGHTMAP_AVX2 static void step(const std::byte* src, std::byte* dst) {
    const __m256i low = _mm256_castps_si256(load_f16x8_as_f32(src));
    const __m256i high = _mm256_castps_si256(load_f16x8_as_f32(src + 16));
    store256<Stream>(dst, pack_lanes_to_u16(round_to_bf16_lanes(low), round_to_bf16_lanes(high)));
  }
};

struct Bf16ToF16 {
  template <bool Stream>
  WEIGHTMAP_AVX2 static void step(const std::byte* src, std::byte* dst) {
    store_f32x8_as_f16<Stream>(dst, _mm256_castsi256_ps(load_bf16x8_as_f32_bits(src)));
    store_f32x8_as_f16<Stream>(dst + 16, _mm256_castsi256_ps(load_bf16x8_as_f32_bits(src + 16)));
  }
};

struct F64ToF32 {
  template <bool Stream>
  WEIGHTMAP_AVX2 static void step(const std::byte* src, std::byte* dst) {
    for (std::size_t i = 0; i < kStep; i += 4) {
      const __m128 f32 =
          _mm256_cvtpd_ps(_mm256_loadu_pd(reinterpret_cast<const double*>(src + 8 * i)));
      store128<Stream>(dst + 4 * i, _mm_castps_si128(f32));
    }
  }
};

// Outputs at least this big are written with non-temporal stores: they are far larger than
// the caches, so keeping them there only evicts the source. Smaller outputs stay cached for
// whoever reads them next.
constexpr std::size_t kStreamingThreshold = std::size_t{4} << 20;

template <std::size_t SrcSize, std::size_t DstSize, typename Conversion>
WEIGHTMAP_AVX2 inline void run_steps(const std::byte* src, std::byte* dst, std::size_t n) {
  std::size_t i = 0;
  const auto address = reinterpret_cast<std::uintptr_t>(dst);
  if (n * DstSize >= kStreamingThreshold && address % DstSize == 0) {
    // Streaming stores need 32-byte alignment: convert a few elements the ordinary way first.
    const std::size_t head = ((32 - address % 32) % 32) / DstSize;
    if (head > 0) run_tail<SrcSize, DstSize>(src, dst, head, Conversion::template step<false>);
    for (i = head; i + kStep <= n; i += kStep) {
      Conversion::template step<true>(src + i * SrcSize, dst + i * DstSize);
    }
    _mm_sfence();  // order the streamed stores before anything the caller does next
  }
  for (; i + kStep <= n; i += kStep) {
    Conversion::template step<false>(src + i * SrcSize, dst + i * DstSize);
  }
  if (i < n) {
    run_tail<SrcSize, DstSize>(src + i * SrcSize, dst + i * DstSize, n - i,
                               Conversion::template step<false>);
  }
}

WEIGHTMAP_AVX2 void f16_to_f32(const std::byte* src, std::byte* dst, std::size_t n) {
  run_steps<2, 4, F16ToF32>(src, dst, n);
}
WEIGHTMAP_AVX2 void bf16_to_f32(const std::byte* src, std::byte* dst, std::size_t n) {
  run_steps<2, 4, Bf16ToF32>(src, dst, n);
}
WEIGHTMAP_AVX2 void f32_to_f16(const std::byte* src, std::byte* dst, std::size_t n) {
  run_steps<4, 2, F32ToF16>(src, dst, n);
}
WEIGHTMAP_AVX2 void f32_to_bf16(const std::byte* src, std::byte* dst, std::size_t n) {
  run_steps<4, 2, F32ToBf16>(src, dst, n);
}
WEIGHTMAP_AVX2 void f16_to_bf16(const std::byte* src, std::byte* dst, std::size_t n) {
  run_steps<2, 2, F16ToBf16>(src, dst, n);
}
WEIGHTMAP_AVX2 void bf16_to_f16(const std::byte* src, std::byte* dst, std::size_t n) {
  run_steps<2, 2, Bf16ToF16>(src, dst, n);
}
WEIGHTMAP_AVX2 void f64_to_f32(const std::byte* src, std::byte* dst, std::size_t n) {
  run_steps<8, 4, F64ToF32>(src, dst, n);
}

bool cpu_has_avx2_f16c() noexcept {
  __builtin_cpu_init();  // needed when this runs before other static constructors
  // The builtin also checks that the OS saves the YMM registers. clang 14 does not know
  // "f16c" as a feature name, so that bit comes from CPUID leaf 1 directly.
  if (!__builtin_cpu_supports("avx2")) return false;
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & bit_F16C) != 0;
}

}  // namespace

const ConvertKernels* avx2_kernels() noexcept {
  static const ConvertKernels* const kernels = []() -> const ConvertKernels* {
    if (!cpu_has_avx2_f16c()) return nullptr;
    const auto& scalar = scalar_kernels();
    static const ConvertKernels table{
        .name = "avx2+f16c",
        .f16_to_f32 = f16_to_f32,
        .bf16_to_f32 = bf16_to_f32,
        // A 256-entry table lookup is already near memory speed; gathers would not beat it.
        .f8_e4m3_to_f32 = scalar.f8_e4m3_to_f32,
        .f8_e5m2_to_f32 = scalar.f8_e5m2_to_f32,
        .f64_to_f32 = f64_to_f32,
        .f32_to_f16 = f32_to_f16,
        .f32_to_bf16 = f32_to_bf16,
        .f16_to_bf16 = f16_to_bf16,
        .bf16_to_f16 = bf16_to_f16,
        .i64_to_i32 = scalar.i64_to_i32,
    };
    return &table;
  }();
  return kernels;
}

#else  // not x86-64: the scalar kernels are all there is.

const ConvertKernels* avx2_kernels() noexcept { return nullptr; }

#endif

}  // namespace weightmap::detail
