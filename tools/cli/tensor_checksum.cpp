#include "cli/tensor_checksum.hpp"

#include <bit>
#include <cstring>

#include "weightmap/fault_guard.hpp"

namespace weightmap::cli {
namespace {

// Odd 64-bit constants with well-spread bits (the golden ratio and primes used by common
// multiply-rotate hashes).
constexpr std::uint64_t kPrime1 = 0x9e3779b185ebca87ull;
constexpr std::uint64_t kPrime2 = 0xc2b2ae3d27d4eb4full;
constexpr std::uint64_t kPrime3 = 0x165667b19e3779f9ull;

std::uint64_t load_word(const std::byte* p) noexcept {
  std::uint64_t word = 0;
  std::memcpy(&word, p, sizeof word);  // mapped tensors need not be 8-byte aligned
  return word;
}

std::uint64_t round(std::uint64_t lane, std::uint64_t word) noexcept {
  return std::rotl(lane + word * kPrime2, 31) * kPrime1;
}

std::uint64_t avalanche(std::uint64_t h) noexcept {
  h ^= h >> 33;
  h *= kPrime2;
  h ^= h >> 29;
  h *= kPrime3;
  h ^= h >> 32;
  return h;
}

}  // namespace

std::uint64_t hash_bytes(std::span<const std::byte> bytes) noexcept {
  const std::byte* p = bytes.data();
  std::size_t left = bytes.size();
  std::uint64_t lanes[4] = {kPrime1 + kPrime2, kPrime2, 0, 0 - kPrime1};
  for (; left >= 32; p += 32, left -= 32) {
    lanes[0] = round(lanes[0], load_word(p));
    lanes[1] = round(lanes[1], load_word(p + 8));
    lanes[2] = round(lanes[2], load_word(p + 16));
    lanes[3] = round(lanes[3], load_word(p + 24));
  }
  std::uint64_t h = std::rotl(lanes[0], 1) + std::rotl(lanes[1], 7) + std::rotl(lanes[2], 12) +
                    std::rotl(lanes[3], 18);
  h += static_cast<std::uint64_t>(bytes.size());
  for (; left >= 8; p += 8, left -= 8) h = std::rotl(h ^ round(0, load_word(p)), 27) * kPrime1;
  for (; left > 0; ++p, --left) {
    h = std::rotl(h ^ (static_cast<std::uint64_t>(*p) * kPrime3), 11) * kPrime1;
  }
  return avalanche(h);
}

void TensorChecksum::add(std::span<const std::byte> bytes) noexcept {
  state_ = avalanche(state_ ^ hash_bytes(bytes)) + kPrime3;
}

void TensorChecksum::add(const TensorStorage& tensor) {
  if (!tensor.mapped || tensor.mapping == nullptr) {
    add(tensor.bytes);
    return;
  }
  const MappedFile& file = *tensor.mapping;
  std::uint64_t hash = 0;
  // The body only hashes (noexcept, no allocation): safe to abandon at a fault.
  guarded_read(tensor.bytes,
               FaultSite{file.path(), tensor.name, offset_in_mapping(file, tensor.bytes)},
               [&hash, &tensor] { hash = hash_bytes(tensor.bytes); });
  state_ = avalanche(state_ ^ hash) + kPrime3;
}

}  // namespace weightmap::cli
