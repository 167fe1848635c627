// libFuzzer target: any bytes given to the GGUF reader give an index or a
// weightmap::Error, never a crash, hang or leak.
#include <cstddef>
#include <cstdint>
#include <span>

#include "format/readers.hpp"
#include "io/byte_source.hpp"
#include "weightmap/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const weightmap::io::MemoryByteSource source("fuzz.gguf", std::as_bytes(std::span(data, size)));
  try {
    const auto index = weightmap::format::read_gguf(source);
    for (const auto& tensor : index.tensors) {
      // The reader promised every range lies inside the source.
      if (tensor.offset > size || tensor.nbytes > size - tensor.offset) __builtin_trap();
    }
  } catch (const weightmap::Error&) {
  }
  return 0;
}
