#include "cli/bench_baseline.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>

#include "cli/bench_file_read.hpp"
#include "weightmap/convert.hpp"
#include "weightmap/error.hpp"

namespace weightmap::cli {
namespace {

// As the loader allocates a loaded tensor's buffer: aligned_alloc at the type's natural
// alignment (at least max_align_t's), the size rounded up to it. Same allocator, same page
// faults, so the baseline's ratio measures the strategy, not the allocation.
std::unique_ptr<std::byte, void (*)(void*)> allocate_destination(std::uint64_t bytes, DType type) {
  const std::size_t alignment =
      std::max<std::size_t>(dtype_info(type).alignment, alignof(std::max_align_t));
  const std::size_t rounded =
      bytes == 0 ? alignment
                 : (static_cast<std::size_t>(bytes) + alignment - 1) / alignment * alignment;
  void* memory = std::aligned_alloc(alignment, rounded);
  if (memory == nullptr) {
    throw Error(ErrorCode::io, fmt::format("out of memory allocating {} bytes", rounded));
  }
  return {static_cast<std::byte*>(memory), &std::free};
}

std::uint64_t destination_bytes(const BaselineTensor& t) {
  if (t.wanted == t.stored) return t.nbytes;
  return dtype_bytes_for(t.wanted, t.elements).value_or(t.nbytes);
}

}  // namespace

BaselineBuffers baseline_load(const std::string& path, std::span<const BaselineTensor> tensors,
                              unsigned threads) {
  BaselineBuffers out;
  out.buffers.reserve(tensors.size());
  for (const BaselineTensor& t : tensors) {
    out.buffers.push_back(allocate_destination(destination_bytes(t), t.wanted));
  }

  std::atomic<std::size_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr first_error;
  std::mutex error_mutex;
  const auto worker = [&] {
    try {
      const ReadOnlyFd fd(path);
      std::vector<std::byte> staging;  // reused for every tensor this thread takes
      for (std::size_t i = next++; i < tensors.size() && !failed; i = next++) {
        const BaselineTensor& t = tensors[i];
        const auto stored_bytes = static_cast<std::size_t>(t.nbytes);
        if (staging.size() < stored_bytes) staging.resize(stored_bytes);
        const std::span<std::byte> source = std::span(staging).first(stored_bytes);
        read_fully(fd, t.offset, source);
        std::byte* destination = out.buffers[i].get();
        if (t.wanted == t.stored) {
          std::memcpy(destination, source.data(), stored_bytes);
        } else {
          convert(t.stored, source, t.wanted,
                  std::span(destination, static_cast<std::size_t>(destination_bytes(t))),
                  t.elements);
        }
      }
    } catch (...) {
      failed = true;
      const std::lock_guard lock(error_mutex);
      if (!first_error) first_error = std::current_exception();
    }
  };
  {
    std::vector<std::jthread> pool;
    for (unsigned i = 0; i < std::max(1u, threads); ++i) pool.emplace_back(worker);
  }  // joined here
  if (first_error) std::rethrow_exception(first_error);
  return out;
}

}  // namespace weightmap::cli
