// The central directory of a zip archive (PyTorch >= 1.6 checkpoints are zip archives), with
// each entry's data range resolved through its local header and checked against the file.
// Only stored (uncompressed) entries can be handed out as file ranges; compressed ones are
// listed so callers can reject them by name.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/byte_source.hpp"

namespace weightmap::format {

struct ZipEntry {
  std::string name;
  std::uint16_t method = 0;  // 0 = stored, 8 = deflate, ...
  std::uint32_t crc32 = 0;
  std::uint64_t compressed_size = 0;
  std::uint64_t size = 0;  // uncompressed
  std::uint64_t local_header_offset = 0;
  // Absolute offset of the entry's first data byte; [data_offset, data_offset +
  // compressed_size) lies inside the file and before the central directory.
  std::uint64_t data_offset = 0;

  bool stored() const noexcept { return method == 0; }
};

struct ZipDirectory {
  std::vector<ZipEntry> entries;  // in central directory order; names are unique
  std::uint64_t central_directory_offset = 0;
  bool zip64 = false;
};

// Throws Error(malformed) naming the file and the byte offset of the first broken field;
// Error(unsupported) for multi-disk archives and encrypted entries.
ZipDirectory read_zip_directory(const io::ByteSource& source);

}  // namespace weightmap::format
