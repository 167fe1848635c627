// A small sample model in a test's own folder, the bytes `weightmap sample` writes for the
// same size, tensor count, dtype and seed 0 (both use tools/testbed's generator).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "testbed/sample_model.hpp"
#include "weightmap/dtype.hpp"
#include "weightmap/tensor_info.hpp"

namespace weightmap::test {

struct SampleSpec {
  FileFormat format = FileFormat::safetensors;
  std::uint64_t bytes = std::uint64_t{1} << 20;  // of tensor data, within 1%
  std::size_t tensors = 20;
  DType dtype = DType::F16;
};

// Writes the model to `path` and returns `path`.
inline std::string write_sample(const std::string& path, const SampleSpec& spec = {}) {
  testbed::write_sample_file(path,
                             testbed::plan_sample_tensors(spec.bytes, spec.tensors, spec.dtype),
                             {.format = spec.format});
  return path;
}

}  // namespace weightmap::test
