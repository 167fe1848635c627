// Conversion throughput over 64 MiB of source data, against a memcpy of the same source bytes
// in the same run (the floor a conversion cannot beat; f16 -> f32 also writes twice the bytes
// memcpy writes). Bytes processed count source bytes, so the ratio of two rates is the
// ratio of their times.
//
//   build/bench/weightmap_bench --benchmark_filter=Convert --benchmark_repetitions=5
#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <vector>

#include "dtype/convert_impl.hpp"
#include "weightmap/convert.hpp"

namespace {

using weightmap::DType;

constexpr std::size_t kSourceBytes = std::size_t{64} << 20;

// Finite values of the source type (random mantissas, modest exponents), so no kernel takes
// a special-value path that real weights would not.
std::vector<std::byte> make_source(DType type) {
  std::vector<std::byte> bytes(kSourceBytes);
  std::mt19937 random(7);
  if (type == DType::F32) {
    std::normal_distribution<float> normal(0.0f, 0.05f);
    for (std::size_t i = 0; i < kSourceBytes; i += 4) {
      const float value = normal(random);
      std::memcpy(bytes.data() + i, &value, 4);
    }
  } else {
    for (std::size_t i = 0; i < kSourceBytes; i += 2) {
      // Sign, an exponent well inside both f16's and bf16's range, random mantissa bits.
      const auto bits = static_cast<std::uint16_t>((random() & 0x83ffu) | 0x3000u);
      std::memcpy(bytes.data() + i, &bits, 2);
    }
  }
  return bytes;
}

void run_convert(benchmark::State& state, const weightmap::detail::ConvertKernels* kernels,
                 DType from, DType to) {
  const auto src = make_source(from);
  const auto elements =
      *weightmap::dtype_bytes_for(from, 1) == 4 ? kSourceBytes / 4 : kSourceBytes / 2;
  // Allocated and touched before timing: page faults on fresh memory would dominate.
  std::vector<std::byte> dst(static_cast<std::size_t>(*weightmap::dtype_bytes_for(to, elements)),
                             std::byte{1});
  for (auto _ : state) {
    if (kernels == nullptr) {
      weightmap::convert(from, src, to, dst, elements);
    } else {
      weightmap::detail::convert_with(*kernels, from, src, to, dst, elements);
    }
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(kSourceBytes));
  state.SetLabel(
      std::string(kernels == nullptr ? weightmap::convert_implementation() : kernels->name));
}

void BM_ConvertFloorMemcpy(benchmark::State& state) {
  const auto src = make_source(DType::F16);
  std::vector<std::byte> dst(kSourceBytes, std::byte{1});
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), kSourceBytes);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(kSourceBytes));
}

void BM_ConvertF16ToF32(benchmark::State& state) {
  run_convert(state, nullptr, DType::F16, DType::F32);
}
void BM_ConvertBf16ToF32(benchmark::State& state) {
  run_convert(state, nullptr, DType::BF16, DType::F32);
}
void BM_ConvertF32ToF16(benchmark::State& state) {
  run_convert(state, nullptr, DType::F32, DType::F16);
}
// The portable reference, to show what dispatch buys.
void BM_ConvertF16ToF32Scalar(benchmark::State& state) {
  run_convert(state, &weightmap::detail::scalar_kernels(), DType::F16, DType::F32);
}

}  // namespace

BENCHMARK(BM_ConvertFloorMemcpy)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ConvertF16ToF32)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ConvertBf16ToF32)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ConvertF32ToF16)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ConvertF16ToF32Scalar)->Unit(benchmark::kMillisecond)->UseRealTime();
