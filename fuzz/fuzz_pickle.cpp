// libFuzzer target: the input is the data.pkl of a checkpoint whose storages "0" (6 f32)
// and "1" (3 f32) exist, so the restricted pickle reader, the flattening of the object tree
// and the tensor checks all run. Any input gives an index whose tensors lie inside their
// storages, or a weightmap::Error; never a crash, hang, leak or a call of anything.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "format/readers.hpp"
#include "io/byte_source.hpp"
#include "support/pytorch_bytes.hpp"
#include "weightmap/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string pickle(reinterpret_cast<const char*>(data), size);
  const std::string archive = weightmap::test::pytorch_checkpoint(pickle);
  const weightmap::io::MemoryByteSource source("fuzz.pt", std::as_bytes(std::span(archive)));
  try {
    const auto index = weightmap::format::read_pytorch(source);
    for (const auto& tensor : index.tensors) {
      if (tensor.offset > archive.size()) __builtin_trap();
      if (tensor.strides.empty() && tensor.nbytes > archive.size() - tensor.offset) {
        __builtin_trap();
      }
    }
  } catch (const weightmap::Error&) {
  }
  return 0;
}
