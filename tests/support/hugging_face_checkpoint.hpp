// A Stable-Diffusion-shaped checkpoint laid out as Hugging Face's safetensors writer lays it
// out (`weightmap sample --hugging-face`): f16 weights, f32 norms and biases, an i64
// position_ids, header padded to 8 bytes, tensors sorted by element size then name.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "testbed/sample_model.hpp"
#include "weightmap/writer.hpp"

namespace weightmap::testing {

struct HuggingFaceCheckpoint {
  std::vector<TensorToWrite> tensors;  // in the order given to the writer
  WrittenFile written;
};

// Writes the checkpoint to `path`. The sample's tensor sizes are multiples of 32 bytes, so
// every tensor after position_ids (616 bytes) sits at the same offset mod 32: the metadata is
// lengthened until that is not 0, as in most real files, so tests see tensors off 32 bytes.
inline HuggingFaceCheckpoint write_hugging_face_checkpoint(const std::string& path,
                                                           std::uint64_t bytes, std::size_t count) {
  HuggingFaceCheckpoint out;
  out.tensors =
      testbed::hugging_face_checkpoint(testbed::plan_sample_tensors(bytes, count, DType::F16));
  const auto fill = [&](std::size_t i, std::uint64_t offset, std::span<std::byte> to) {
    testbed::fill_sample_bytes(1, out.tensors[i].dtype, i, offset, to);
  };
  SafetensorsWriteOptions options;
  options.hugging_face_order = true;
  std::string note = "weightmap test";
  for (;;) {
    options.metadata = {{"format", "pt"}, {"note", note}};
    out.written = write_safetensors(path, out.tensors, fill, options);
    if ((out.written.data_offset + 616) % 32 != 0) return out;
    note += "........";  // 8 more bytes of header
  }
}

}  // namespace weightmap::testing
