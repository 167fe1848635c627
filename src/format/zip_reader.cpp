// Zip layout facts used here (PKWARE APPNOTE 6.3): the end of central directory record
// (EOCD, 22 bytes + comment) ends the file; a zip64 archive puts a 20-byte locator right
// before it, pointing at a zip64 EOCD record; 0xFFFF/0xFFFFFFFF in a 16/32-bit field means
// "the real value is in the zip64 record or the entry's zip64 extra field (id 1)".
#include "format/zip_reader.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <span>
#include <string_view>
#include <unordered_set>

#include "weightmap/error.hpp"

namespace weightmap::format {
namespace {

constexpr std::uint32_t kLocalHeaderSignature = 0x04034b50;
constexpr std::uint32_t kCentralHeaderSignature = 0x02014b50;
constexpr std::uint32_t kEocdSignature = 0x06054b50;
constexpr std::uint32_t kZip64EocdSignature = 0x06064b50;
constexpr std::uint32_t kZip64LocatorSignature = 0x07064b50;
constexpr std::uint64_t kEocdBytes = 22;
constexpr std::uint64_t kZip64LocatorBytes = 20;
constexpr std::uint64_t kZip64EocdBytes = 56;
constexpr std::uint64_t kCentralHeaderBytes = 46;
constexpr std::uint64_t kLocalHeaderBytes = 30;
constexpr std::uint64_t kMaxCommentBytes = 0xFFFF;

template <typename T>
T load(std::span<const std::byte> bytes, std::size_t at) {
  T value;
  std::memcpy(&value, bytes.data() + at, sizeof(T));
  return value;  // zip is little-endian, like every host we build for
}

class DirectoryReader {
 public:
  explicit DirectoryReader(const io::ByteSource& source) : source_(source), size_(source.size()) {}

  ZipDirectory read() {
    const std::uint64_t eocd = find_eocd();
    std::array<std::byte, kEocdBytes> record{};
    source_.read_at(eocd, record);
    const auto disk = load<std::uint16_t>(record, 4);
    const auto cd_disk = load<std::uint16_t>(record, 6);
    const auto disk_entries = load<std::uint16_t>(record, 8);
    std::uint64_t entries = load<std::uint16_t>(record, 10);
    std::uint64_t cd_size = load<std::uint32_t>(record, 12);
    std::uint64_t cd_offset = load<std::uint32_t>(record, 16);
    std::uint64_t cd_end_limit = eocd;  // the central directory ends before this

    ZipDirectory directory;
    if (entries == 0xFFFF || cd_size == 0xFFFFFFFF || cd_offset == 0xFFFFFFFF ||
        disk_entries == 0xFFFF || disk == 0xFFFF || cd_disk == 0xFFFF) {
      directory.zip64 = true;
      const Zip64End end = read_zip64_end(eocd);
      entries = end.entries;
      cd_size = end.cd_size;
      cd_offset = end.cd_offset;
      cd_end_limit = end.record_offset;
    } else if (disk != 0 || cd_disk != 0 || disk_entries != entries) {
      fail_unsupported("multi-disk (split) zip archives are not supported", eocd + 4);
    }
    if (cd_offset > cd_end_limit || cd_size > cd_end_limit - cd_offset) {
      fail(fmt::format("the central directory [{}, {}) does not end before the end record at "
                       "byte {}",
                       cd_offset, cd_offset + std::min(cd_size, size_), cd_end_limit),
           eocd);
    }
    if (entries > cd_size / kCentralHeaderBytes) {
      fail(fmt::format("the end record claims {} entries, but the {}-byte central directory "
                       "holds at most {}",
                       entries, cd_size, cd_size / kCentralHeaderBytes),
           eocd);
    }
    directory.central_directory_offset = cd_offset;
    directory.entries = read_central_directory(cd_offset, cd_size, entries);
    for (auto& entry : directory.entries) resolve_local_header(entry, cd_offset);
    return directory;
  }

 private:
  struct Zip64End {
    std::uint64_t record_offset;
    std::uint64_t entries;
    std::uint64_t cd_size;
    std::uint64_t cd_offset;
  };

  [[noreturn]] void fail(const std::string& message, std::uint64_t offset) const {
    throw Error(ErrorCode::malformed, message, {source_.name(), {}, offset});
  }
  [[noreturn]] void fail_unsupported(const std::string& message, std::uint64_t offset) const {
    throw Error(ErrorCode::unsupported, message, {source_.name(), {}, offset});
  }

  // The EOCD is the last record: search the final 22 + 65535 bytes backwards for a
  // signature whose comment length ends exactly at the end of the file.
  std::uint64_t find_eocd() const {
    if (size_ < kEocdBytes) {
      fail(fmt::format("the file is {} bytes, too short for a zip end record ({} bytes)", size_,
                       kEocdBytes),
           0);
    }
    const std::uint64_t tail_bytes = std::min(size_, kEocdBytes + kMaxCommentBytes);
    const std::uint64_t tail_offset = size_ - tail_bytes;
    std::vector<std::byte> tail(static_cast<std::size_t>(tail_bytes));
    source_.read_at(tail_offset, tail);
    for (std::size_t at = tail.size() - kEocdBytes + 1; at-- > 0;) {
      if (load<std::uint32_t>(tail, at) != kEocdSignature) continue;
      const auto comment = load<std::uint16_t>(tail, at + 20);
      if (at + kEocdBytes + comment == tail.size()) return tail_offset + at;
    }
    fail("no zip end of central directory record at the end of the file (truncated?)",
         size_ - kEocdBytes);
  }

  Zip64End read_zip64_end(std::uint64_t eocd) const {
    if (eocd < kZip64LocatorBytes) {
      fail("the end record asks for zip64 but no zip64 locator precedes it", eocd);
    }
    const std::uint64_t locator_offset = eocd - kZip64LocatorBytes;
    std::array<std::byte, kZip64LocatorBytes> locator{};
    source_.read_at(locator_offset, locator);
    if (load<std::uint32_t>(locator, 0) != kZip64LocatorSignature) {
      fail("the end record asks for zip64 but no zip64 locator precedes it", locator_offset);
    }
    const auto record_offset = load<std::uint64_t>(locator, 8);
    if (load<std::uint32_t>(locator, 4) != 0 || load<std::uint32_t>(locator, 16) != 1) {
      fail_unsupported("multi-disk (split) zip archives are not supported", locator_offset);
    }
    if (record_offset > locator_offset || locator_offset - record_offset < kZip64EocdBytes) {
      fail(fmt::format("the zip64 end record offset {} is not before the locator", record_offset),
           locator_offset + 8);
    }
    std::array<std::byte, kZip64EocdBytes> record{};
    source_.read_at(record_offset, record);
    if (load<std::uint32_t>(record, 0) != kZip64EocdSignature) {
      fail("no zip64 end record where the locator points", record_offset);
    }
    if (load<std::uint32_t>(record, 16) != 0 || load<std::uint32_t>(record, 20) != 0 ||
        load<std::uint64_t>(record, 24) != load<std::uint64_t>(record, 32)) {
      fail_unsupported("multi-disk (split) zip archives are not supported", record_offset + 16);
    }
    return {record_offset, load<std::uint64_t>(record, 32), load<std::uint64_t>(record, 40),
            load<std::uint64_t>(record, 48)};
  }

  std::vector<ZipEntry> read_central_directory(std::uint64_t cd_offset, std::uint64_t cd_size,
                                               std::uint64_t count) const {
    // cd_size lies inside the file (checked by the caller), so this allocation is bounded.
    std::vector<std::byte> cd(static_cast<std::size_t>(cd_size));
    source_.read_at(cd_offset, cd);
    std::vector<ZipEntry> entries;
    entries.reserve(static_cast<std::size_t>(count));
    std::unordered_set<std::string> names;
    std::size_t at = 0;
    for (std::uint64_t i = 0; i < count; ++i) {
      const std::uint64_t here = cd_offset + at;
      if (cd.size() - at < kCentralHeaderBytes) {
        fail(fmt::format("central directory entry {} runs past the end of the directory", i), here);
      }
      const std::span<const std::byte> header(cd.data() + at, kCentralHeaderBytes);
      if (load<std::uint32_t>(header, 0) != kCentralHeaderSignature) {
        fail(fmt::format("central directory entry {} has no PK\\1\\2 signature", i), here);
      }
      ZipEntry entry;
      const auto flags = load<std::uint16_t>(header, 8);
      entry.method = load<std::uint16_t>(header, 10);
      entry.crc32 = load<std::uint32_t>(header, 16);
      entry.compressed_size = load<std::uint32_t>(header, 20);
      entry.size = load<std::uint32_t>(header, 24);
      const std::size_t name_bytes = load<std::uint16_t>(header, 28);
      const std::size_t extra_bytes = load<std::uint16_t>(header, 30);
      const std::size_t comment_bytes = load<std::uint16_t>(header, 32);
      const auto start_disk = load<std::uint16_t>(header, 34);
      entry.local_header_offset = load<std::uint32_t>(header, 42);
      if (cd.size() - at - kCentralHeaderBytes < name_bytes + extra_bytes + comment_bytes) {
        fail(fmt::format("central directory entry {} runs past the end of the directory", i), here);
      }
      at += kCentralHeaderBytes;
      entry.name.assign(reinterpret_cast<const char*>(cd.data() + at), name_bytes);
      const std::span<const std::byte> extra(cd.data() + at + name_bytes, extra_bytes);
      read_zip64_extra(entry, start_disk, extra, here);
      at += name_bytes + extra_bytes + comment_bytes;

      if ((flags & 0x1) != 0) {
        fail_unsupported(fmt::format("zip entry \"{}\" is encrypted", printable(entry.name)),
                         here + 8);
      }
      if (entry.stored() && entry.compressed_size != entry.size) {
        fail(fmt::format("stored zip entry \"{}\" has compressed size {} but size {}",
                         printable(entry.name), entry.compressed_size, entry.size),
             here + 20);
      }
      if (!names.insert(entry.name).second) {
        fail(fmt::format("zip entry \"{}\" appears twice", printable(entry.name)), here);
      }
      entries.push_back(std::move(entry));
    }
    return entries;
  }

  // Fields saturated in the fixed header come, in this order, from the zip64 extra field.
  void read_zip64_extra(ZipEntry& entry, std::uint16_t start_disk, std::span<const std::byte> extra,
                        std::uint64_t here) const {
    const bool need_size = entry.size == 0xFFFFFFFF;
    const bool need_compressed = entry.compressed_size == 0xFFFFFFFF;
    const bool need_offset = entry.local_header_offset == 0xFFFFFFFF;
    if (start_disk != 0 && start_disk != 0xFFFF) {
      fail_unsupported("multi-disk (split) zip archives are not supported", here + 34);
    }
    if (!need_size && !need_compressed && !need_offset) return;
    std::size_t at = 0;
    while (extra.size() - at >= 4) {
      const auto id = load<std::uint16_t>(extra, at);
      const std::size_t length = load<std::uint16_t>(extra, at + 2);
      at += 4;
      if (extra.size() - at < length) break;
      if (id == 0x0001) {
        const auto field = extra.subspan(at, length);
        std::size_t used = 0;
        const auto take = [&](std::uint64_t& value) {
          if (field.size() - used < 8) {
            fail(fmt::format("zip entry \"{}\": its zip64 extra field is too short",
                             printable(entry.name)),
                 here);
          }
          value = load<std::uint64_t>(field, used);
          used += 8;
        };
        if (need_size) take(entry.size);
        if (need_compressed) take(entry.compressed_size);
        if (need_offset) take(entry.local_header_offset);
        return;
      }
      at += length;
    }
    fail(fmt::format("zip entry \"{}\" needs a zip64 extra field but has none",
                     printable(entry.name)),
         here);
  }

  void resolve_local_header(ZipEntry& entry, std::uint64_t cd_offset) const {
    const std::uint64_t at = entry.local_header_offset;
    if (at > cd_offset || cd_offset - at < kLocalHeaderBytes) {
      fail(fmt::format("zip entry \"{}\": local header offset {} is not before the central "
                       "directory (byte {})",
                       printable(entry.name), at, cd_offset),
           at > size_ ? cd_offset : at);
    }
    std::array<std::byte, kLocalHeaderBytes> header{};
    source_.read_at(at, header);
    if (load<std::uint32_t>(header, 0) != kLocalHeaderSignature) {
      fail(fmt::format("zip entry \"{}\": no PK\\3\\4 local header at byte {}",
                       printable(entry.name), at),
           at);
    }
    if (load<std::uint16_t>(header, 8) != entry.method) {
      fail(fmt::format("zip entry \"{}\": the local header's compression method {} differs "
                       "from the central directory's {}",
                       printable(entry.name), load<std::uint16_t>(header, 8), entry.method),
           at + 8);
    }
    const std::uint64_t name_bytes = load<std::uint16_t>(header, 26);
    const std::uint64_t extra_bytes = load<std::uint16_t>(header, 28);
    const std::uint64_t room = cd_offset - at - kLocalHeaderBytes;
    if (name_bytes + extra_bytes > room) {
      fail(fmt::format("zip entry \"{}\": the local header runs into the central directory",
                       printable(entry.name)),
           at + 26);
    }
    std::string name(static_cast<std::size_t>(name_bytes), '\0');
    source_.read_at(at + kLocalHeaderBytes, std::as_writable_bytes(std::span(name)));
    if (name != entry.name) {
      fail(fmt::format("zip entry \"{}\": the local header names it \"{}\"", printable(entry.name),
                       printable(name)),
           at + kLocalHeaderBytes);
    }
    entry.data_offset = at + kLocalHeaderBytes + name_bytes + extra_bytes;
    if (entry.compressed_size > cd_offset - entry.data_offset) {
      fail(fmt::format("zip entry \"{}\": its {} data bytes at byte {} run past the start of "
                       "the central directory (byte {})",
                       printable(entry.name), entry.compressed_size, entry.data_offset, cd_offset),
           entry.data_offset);
    }
  }

  const io::ByteSource& source_;
  std::uint64_t size_;
};

}  // namespace

ZipDirectory read_zip_directory(const io::ByteSource& source) {
  return DirectoryReader(source).read();
}

}  // namespace weightmap::format
