// What an engine asks load() for: a named tensor, the type and shape it wants, the device that
// reads it, and where its bytes go. See docs/loading.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "weightmap/dtype.hpp"
#include "weightmap/export.hpp"

WEIGHTMAP_API_BEGIN
namespace weightmap {

struct DeviceCaps {
  bool reads_host_memory = true;  // the device reads host pointers (CPU, unified memory)
  // Alignment of tensor data the device needs: a power of two, or 0 (the default) for each
  // tensor's natural alignment, that of its type's element or block (DTypeInfo::alignment: 4
  // for f32, 2 for f16, bf16 and q8_0, 8 for i64). Natural alignment is what ggml's CPU
  // kernels need of weights (tests/ggml/cpu_weight_alignment_test.cpp), and what tensors in
  // files written by Hugging Face's safetensors writer (8-byte boundaries) have, so such files
  // map. A device that needs more asks for it here; any nonzero value is used as given.
  std::size_t alignment = 0;
};

// The alignment a tensor of `dtype` gets on `device`: device.alignment, or the type's natural
// alignment when that is 0.
std::size_t required_alignment(const DeviceCaps& device, DType dtype);

// Takes a Loaded tensor's bytes piece by piece instead of a buffer (an engine uploading to a
// device): called from a copy worker with consecutive pieces of the tensor as the caller gets
// it (converted), `offset` bytes into it, at most the worker's staging share at a time. Pieces
// of one tensor come in order from one thread; different tensors' sinks run concurrently.
// Throwing weightmap::Error fails the load with that error (the tensor's name added).
using TensorSink = std::function<void(std::span<const std::byte> piece, std::uint64_t offset)>;

struct TensorRequest {
  std::string name;
  std::optional<DType> dtype;                       // nullopt: the file's type
  std::optional<std::vector<std::uint64_t>> shape;  // nullopt: the file's shape
  DeviceCaps device;
  bool writes_in_place = false;  // the caller patches the bytes (LoRA applied in place)
  bool optional = false;         // absent from the files is not an error
  // Where to put the bytes when the tensor is loaded. A destination makes the tensor Loaded
  // (the caller asked for the bytes there), reported as mapping_disabled.
  void* destination = nullptr;
  std::size_t destination_size = 0;
  // Stream the bytes to this sink (see TensorSink) instead: the tensor is Loaded without a
  // buffer and its TensorStorage has no bytes. Staging stays within staging_bytes_cap.
  TensorSink sink;
};

}  // namespace weightmap
WEIGHTMAP_API_END
