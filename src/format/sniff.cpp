#include <array>
#include <cstring>

#include "format/readers.hpp"

namespace weightmap::format {

std::optional<FileFormat> sniff_format(const io::ByteSource& source) {
  std::array<std::byte, 9> head{};
  const std::size_t n = std::min<std::uint64_t>(source.size(), head.size());
  source.read_at(0, std::span(head.data(), n));
  const auto* bytes = reinterpret_cast<const unsigned char*>(head.data());
  // GGUF files start with the ASCII magic, big-endian files included (rejected later).
  if (n >= 4 && std::memcmp(bytes, "GGUF", 4) == 0) return FileFormat::gguf;
  // A zip archive starts with a local file header (PyTorch >= 1.6 checkpoints).
  if (n >= 4 && std::memcmp(bytes, "PK\x03\x04", 4) == 0) return FileFormat::pytorch_zip;
  // safetensors: an 8-byte little-endian header length, then a JSON object.
  if (n >= 9 && bytes[8] == '{') return FileFormat::safetensors;
  return std::nullopt;
}

}  // namespace weightmap::format
