// libFuzzer target: any bytes given to the zip directory reader give a directory whose
// entry ranges lie inside the file, or a weightmap::Error; never a crash, hang or leak.
#include <cstddef>
#include <cstdint>
#include <span>

#include "format/zip_reader.hpp"
#include "io/byte_source.hpp"
#include "weightmap/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const weightmap::io::MemoryByteSource source("fuzz.zip", std::as_bytes(std::span(data, size)));
  try {
    const auto directory = weightmap::format::read_zip_directory(source);
    for (const auto& entry : directory.entries) {
      // The reader promised every data range ends before the central directory.
      if (entry.data_offset > directory.central_directory_offset ||
          entry.compressed_size > directory.central_directory_offset - entry.data_offset ||
          directory.central_directory_offset > size) {
        __builtin_trap();
      }
    }
  } catch (const weightmap::Error&) {
  }
  return 0;
}
