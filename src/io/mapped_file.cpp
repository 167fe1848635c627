// MappedFile's portable half: the identity check, bounds checks, views, and the page-cache
// calls on its range (io/page_cache.hpp). Opening and unmapping are per system
// (mapped_file_posix.cpp).
#include "weightmap/mapped_file.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "io/identity_at.hpp"
#include "io/page.hpp"
#include "io/page_cache.hpp"
#include "weightmap/error.hpp"

namespace weightmap {

bool MappedFile::changed_on_disk() const {
  try {
    const std::optional<FileIdentity> now = io::identity_at(path_);
    return !now || *now != identity_;
  } catch (const Error&) {
    return true;  // no longer a regular file we can examine
  }
}

void MappedFile::check_range(std::uint64_t offset, std::uint64_t n) const {
  if (offset > identity_.size || n > identity_.size - offset) {
    throw Error(ErrorCode::invalid_argument,
                fmt::format("range of {} bytes at byte {} is outside the mapped file of {} bytes",
                            n, offset, identity_.size),
                {path_, {}, offset});
  }
}

std::span<const std::byte> MappedFile::span(std::uint64_t offset, std::uint64_t n) const {
  check_range(offset, n);
  return {base_ + offset, static_cast<std::size_t>(n)};
}

std::span<std::byte> MappedFile::writable_span(std::uint64_t offset, std::uint64_t n) {
  if (access_ != Access::copy_on_write) {
    throw Error(ErrorCode::invalid_argument,
                "cannot write to a read-only mapping; open it copy-on-write", {path_, {}, offset});
  }
  check_range(offset, n);
  return {base_ + offset, static_cast<std::size_t>(n)};
}

void MappedFile::discard_private_pages(std::uint64_t offset, std::uint64_t n) {
  if (access_ != Access::copy_on_write) return;  // a shared read-only mapping has none
  check_range(offset, n);
  if (n == 0) return;
  const std::uint64_t begin = io::page_floor(offset);
  const std::uint64_t end = std::min(identity_.size, io::page_ceil(offset + n));
  io::drop_private_copies(base_ + begin, static_cast<std::size_t>(end - begin), path_, begin);
}

void MappedFile::advise(Advice advice, std::uint64_t offset, std::uint64_t n) {
  check_range(offset, n);
  if (n == 0) return;
  io::advise_memory(base_ + offset, static_cast<std::size_t>(n), advice, path_);
  io::advise_file(file_, offset, n, advice, path_);
}

void MappedFile::populate_read(std::uint64_t offset, std::uint64_t n) {
  check_range(offset, n);
  io::populate_read(base_ + offset, static_cast<std::size_t>(n), path_, offset);
}

void MappedFile::lock(std::uint64_t offset, std::uint64_t n) {
  check_range(offset, n);
  io::lock_memory(base_ + offset, static_cast<std::size_t>(n), path_);
}

void MappedFile::unlock(std::uint64_t offset, std::uint64_t n) noexcept {
  if (offset > identity_.size || n > identity_.size - offset) return;
  io::unlock_memory(base_ + offset, static_cast<std::size_t>(n));
}

std::uint64_t MappedFile::resident_bytes(std::uint64_t offset, std::uint64_t n) const {
  check_range(offset, n);
  return io::resident_bytes(base_ + offset, static_cast<std::size_t>(n), path_);
}

bool MappedFile::evict() noexcept {
  return io::evict(base_, static_cast<std::size_t>(identity_.size), file_, 0, identity_.size);
}

}  // namespace weightmap
