// The fault guard's portable half: the error a fault becomes and the guarded copy. The
// catching itself is per system (fault_guard_posix.cpp).
#include "weightmap/fault_guard.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace weightmap {
namespace fault_detail {

void throw_fault(std::span<const std::byte> range, const std::byte* fault, const FaultSite& where) {
  // A fault on the page before the range's first byte (prefaulting whole pages) is the
  // range's first byte for the caller.
  std::uint64_t at = 0;
  if (fault > range.data()) {
    at = std::min<std::uint64_t>(static_cast<std::uint64_t>(fault - range.data()),
                                 range.empty() ? 0 : range.size() - 1);
  }
  const std::uint64_t offset = where.offset + at;
  const std::string file(where.file);
  std::error_code no_size;
  const std::uintmax_t size_now = file.empty() ? 0 : std::filesystem::file_size(file, no_size);
  std::string sentence;
  if (!file.empty() && !no_size && size_now <= offset) {
    sentence = fmt::format(
        "the file was truncated to {} bytes after it was mapped, so reading the mapping "
        "failed (SIGBUS); open the model again",
        size_now);
  } else {
    sentence =
        "reading the mapped file failed (SIGBUS): an I/O error, or the file was truncated or "
        "replaced after it was mapped";
  }
  throw Error(ErrorCode::io, std::move(sentence),
              {file, where.tensor.empty() ? std::string() : printable(where.tensor), offset});
}

}  // namespace fault_detail

void guarded_copy(void* destination, const MappedFile& file, std::uint64_t offset, std::uint64_t n,
                  std::string_view tensor) {
  const std::span<const std::byte> source = file.span(offset, n);
  guarded_read(source, FaultSite{file.path(), tensor, offset},
               [&] { std::memcpy(destination, source.data(), source.size()); });
}

std::uint64_t offset_in_mapping(const MappedFile& file, std::span<const std::byte> bytes) {
  const std::span<const std::byte> whole = file.span(0, file.size());
  const auto base = reinterpret_cast<std::uintptr_t>(whole.data());
  const auto at = reinterpret_cast<std::uintptr_t>(bytes.data());
  if (at < base || at - base > whole.size() || bytes.size() > whole.size() - (at - base)) {
    throw Error(ErrorCode::invalid_argument, "the bytes are not inside this file's mapping",
                {file.path()});
  }
  return static_cast<std::uint64_t>(at - base);
}

}  // namespace weightmap
