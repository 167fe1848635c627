// Byte-level writers for tests and fuzz seeds: pickle opcodes one by one and zip archives
// entry by entry, so a test can build a PyTorch checkpoint exactly as torch.save lays it out
// or break any part of it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace weightmap::test {

class PickleBytes {
 public:
  PickleBytes& op(unsigned char code) {
    bytes_.push_back(static_cast<char>(code));
    return *this;
  }
  template <typename T>
  PickleBytes& raw(T value) {
    const std::size_t at = bytes_.size();
    bytes_.resize(at + sizeof(T));
    std::memcpy(bytes_.data() + at, &value, sizeof(T));
    return *this;
  }
  PickleBytes& proto(unsigned char version = 2) { return op(0x80).op(version); }
  PickleBytes& mark() { return op('('); }
  PickleBytes& stop() { return op('.'); }
  PickleBytes& global(std::string_view module, std::string_view name) {
    op('c');
    bytes_.append(module).append("\n").append(name).append("\n");
    return *this;
  }
  PickleBytes& text(std::string_view value) {
    op('X').raw(static_cast<std::uint32_t>(value.size()));
    bytes_.append(value);
    return *this;
  }
  PickleBytes& integer(std::int32_t value) { return op('J').raw(value); }
  PickleBytes& put(std::uint32_t index) { return op('r').raw(index); }
  PickleBytes& get(std::uint32_t index) { return op('j').raw(index); }
  PickleBytes& ints(const std::vector<std::int32_t>& values) {
    mark();
    for (const auto v : values) integer(v);
    return op('t');
  }
  PickleBytes& empty_ordered_dict() { return global("collections", "OrderedDict").op(')').op('R'); }
  // torch._utils._rebuild_tensor_v2(persistent storage, offset, size, stride, False, {}),
  // left on the stack.
  PickleBytes& tensor(std::string_view storage_class, std::string_view key,
                      std::int32_t storage_numel, std::int32_t offset,
                      const std::vector<std::int32_t>& shape,
                      const std::vector<std::int32_t>& stride) {
    global("torch._utils", "_rebuild_tensor_v2").mark();
    storage(storage_class, key, storage_numel);
    integer(offset).ints(shape).ints(stride).op(0x89).empty_ordered_dict();
    return op('t').op('R');
  }
  // ('storage', torch.<class>, key, 'cpu', numel) then BINPERSID.
  PickleBytes& storage(std::string_view storage_class, std::string_view key, std::int32_t numel) {
    mark().text("storage").global("torch", storage_class).text(key).text("cpu").integer(numel);
    return op('t').op('Q');
  }
  const std::string& str() const { return bytes_; }

 private:
  std::string bytes_;
};

class ZipBytes {
 public:
  struct Entry {
    std::string name;
    std::string data;
    std::uint16_t method = 0;
    std::uint64_t local_header_offset = 0;
  };

  // Entries' data start on a multiple of `align` (torch.save pads to 64 with an extra field).
  ZipBytes& add(std::string name, std::string data, std::uint16_t method = 0) {
    entries_.push_back({std::move(name), std::move(data), method, 0});
    return *this;
  }

  // The whole archive; `zip64` writes zip64 end records and saturated 32-bit fields.
  std::string finish(bool zip64 = false, std::size_t align = 64) {
    std::string out;
    for (auto& entry : entries_) {
      entry.local_header_offset = out.size();
      const std::size_t unpadded = out.size() + 30 + entry.name.size();
      std::size_t pad = (align - unpadded % align) % align;
      if (pad != 0 && pad < 4) pad += align;
      put32(out, 0x04034b50);
      put16(out, 20);
      put16(out, 0);
      put16(out, entry.method);
      put32(out, 0);  // time, date
      put32(out, 0);  // crc (not checked by readers of stored entries)
      put32(out, static_cast<std::uint32_t>(entry.data.size()));
      put32(out, static_cast<std::uint32_t>(entry.data.size()));
      put16(out, static_cast<std::uint16_t>(entry.name.size()));
      put16(out, static_cast<std::uint16_t>(pad));
      out += entry.name;
      if (pad != 0) {
        put16(out, 0x4246);  // "FB": padding, as PyTorch writes
        put16(out, static_cast<std::uint16_t>(pad - 4));
        out.append(pad - 4, 'Z');
      }
      out += entry.data;
    }
    const std::uint64_t cd_offset = out.size();
    for (const auto& entry : entries_) {
      put32(out, 0x02014b50);
      put16(out, 20);
      put16(out, zip64 ? 45 : 20);
      put16(out, 0);
      put16(out, entry.method);
      put32(out, 0);
      put32(out, 0);
      const auto size32 = zip64 ? 0xFFFFFFFFu : static_cast<std::uint32_t>(entry.data.size());
      put32(out, size32);
      put32(out, size32);
      put16(out, static_cast<std::uint16_t>(entry.name.size()));
      put16(out, zip64 ? 28 : 0);
      put16(out, 0);
      put16(out, 0);
      put16(out, 0);
      put32(out, 0);
      put32(out, zip64 ? 0xFFFFFFFFu : static_cast<std::uint32_t>(entry.local_header_offset));
      out += entry.name;
      if (zip64) {
        put16(out, 1);
        put16(out, 24);
        put64(out, entry.data.size());
        put64(out, entry.data.size());
        put64(out, entry.local_header_offset);
      }
    }
    const std::uint64_t cd_size = out.size() - cd_offset;
    if (zip64) {
      const std::uint64_t record = out.size();
      put32(out, 0x06064b50);
      put64(out, 44);
      put16(out, 45);
      put16(out, 45);
      put32(out, 0);
      put32(out, 0);
      put64(out, entries_.size());
      put64(out, entries_.size());
      put64(out, cd_size);
      put64(out, cd_offset);
      put32(out, 0x07064b50);
      put32(out, 0);
      put64(out, record);
      put32(out, 1);
    }
    put32(out, 0x06054b50);
    put16(out, 0);
    put16(out, 0);
    put16(out, zip64 ? 0xFFFF : static_cast<std::uint16_t>(entries_.size()));
    put16(out, zip64 ? 0xFFFF : static_cast<std::uint16_t>(entries_.size()));
    put32(out, zip64 ? 0xFFFFFFFFu : static_cast<std::uint32_t>(cd_size));
    put32(out, zip64 ? 0xFFFFFFFFu : static_cast<std::uint32_t>(cd_offset));
    put16(out, 0);
    return out;
  }

  const std::vector<Entry>& entries() const { return entries_; }

  static void put16(std::string& out, std::uint16_t v) { append(out, v); }
  static void put32(std::string& out, std::uint32_t v) { append(out, v); }
  static void put64(std::string& out, std::uint64_t v) { append(out, v); }

 private:
  template <typename T>
  static void append(std::string& out, T value) {
    char buffer[sizeof(T)];
    std::memcpy(buffer, &value, sizeof(T));
    out.append(buffer, sizeof(T));
  }

  std::vector<Entry> entries_;
};

// A small checkpoint as torch.save lays it out: archive/data.pkl holding an OrderedDict
// {"weight": f32 [2, 3] from storage "0", "bias": f32 [3] from storage "1"}, the storages,
// and archive/version.
inline std::string pytorch_pickle_two_tensors() {
  PickleBytes p;
  p.proto(2).empty_ordered_dict().mark();
  p.text("weight").tensor("FloatStorage", "0", 6, 0, {2, 3}, {3, 1});
  p.text("bias").tensor("FloatStorage", "1", 3, 0, {3}, {1});
  p.op('u').stop();
  return p.str();
}

inline std::string float_bytes(std::size_t count, float first = 0.0f) {
  std::string out(count * 4, '\0');
  for (std::size_t i = 0; i < count; ++i) {
    const float value = first + static_cast<float>(i);
    std::memcpy(out.data() + i * 4, &value, 4);
  }
  return out;
}

inline std::string pytorch_checkpoint(const std::string& pickle, bool zip64 = false) {
  ZipBytes zip;
  zip.add("archive/data.pkl", pickle)
      .add("archive/data/0", float_bytes(6))
      .add("archive/data/1", float_bytes(3, 10.0f))
      .add("archive/version", "3\n");
  return zip.finish(zip64);
}

}  // namespace weightmap::test
