// A byte-level GGUF writer for tests. It writes exactly what it is told, in order, so a test
// can build a valid file or break any field of one (wrong counts, bad lengths, bogus types).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <span>
#include <string_view>
#include <vector>

namespace weightmap::test {

// GGUF value type ids.
enum class GgufType : std::uint32_t {
  u8 = 0,
  i8 = 1,
  u16 = 2,
  i16 = 3,
  u32 = 4,
  i32 = 5,
  f32 = 6,
  boolean = 7,
  string = 8,
  array = 9,
  u64 = 10,
  i64 = 11,
  f64 = 12,
};

class GgufBytes {
 public:
  // --- raw fields, little-endian ---
  template <typename T>
  GgufBytes& put(T value) {
    const std::size_t at = bytes_.size();
    bytes_.resize(at + sizeof(T));
    std::memcpy(bytes_.data() + at, &value, sizeof(T));
    return *this;
  }
  GgufBytes& u8(std::uint8_t v) { return put(v); }
  GgufBytes& u32(std::uint32_t v) { return put(v); }
  GgufBytes& u64(std::uint64_t v) { return put(v); }
  GgufBytes& type(GgufType t) { return put(static_cast<std::uint32_t>(t)); }
  GgufBytes& raw(std::string_view text) {
    const auto* p = reinterpret_cast<const std::byte*>(text.data());
    bytes_.insert(bytes_.end(), p, p + text.size());
    return *this;
  }
  // A GGUF string: u64 length, then the bytes.
  GgufBytes& str(std::string_view text) { return u64(text.size()).raw(text); }
  GgufBytes& zeros(std::size_t n) {
    bytes_.resize(bytes_.size() + n, std::byte{0});
    return *this;
  }
  GgufBytes& pad_to(std::size_t alignment) {
    return zeros((alignment - bytes_.size() % alignment) % alignment);
  }

  // --- whole structures ---
  GgufBytes& header(std::uint64_t tensors, std::uint64_t kvs, std::uint32_t version = 3) {
    return raw("GGUF").u32(version).u64(tensors).u64(kvs);
  }
  GgufBytes& kv_u32(std::string_view key, std::uint32_t v) {
    return str(key).type(GgufType::u32).u32(v);
  }
  GgufBytes& kv_string(std::string_view key, std::string_view v) {
    return str(key).type(GgufType::string).str(v);
  }
  // `ne` innermost first, as GGUF stores it.
  GgufBytes& tensor_info(std::string_view name, std::initializer_list<std::uint64_t> ne,
                         std::uint32_t ggml_type, std::uint64_t offset) {
    str(name).u32(static_cast<std::uint32_t>(ne.size()));
    for (const auto n : ne) u64(n);
    return u32(ggml_type).u64(offset);
  }

  std::size_t size() const { return bytes_.size(); }
  const std::vector<std::byte>& bytes() const { return bytes_; }
  std::span<const std::byte> span() const { return bytes_; }

 private:
  std::vector<std::byte> bytes_;
};

}  // namespace weightmap::test
