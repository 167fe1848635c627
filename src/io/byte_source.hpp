// The only way format readers see a file: bounded reads at offsets. Readers copy what they
// parse out of the source, so they never hold pointers into a mapping (and never know
// whether there is one).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace weightmap::io {

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // The path (or a label), used in error messages.
  virtual const std::string& name() const = 0;
  virtual std::uint64_t size() const = 0;
  // Fills `out` with the bytes at [offset, offset + out.size()). Throws Error(io) naming the
  // source and offset when the range is not inside the source or the read fails.
  virtual void read_at(std::uint64_t offset, std::span<std::byte> out) const = 0;
};

// Bytes already in memory: used by tests and fuzzers.
class MemoryByteSource final : public ByteSource {
 public:
  MemoryByteSource(std::string name, std::span<const std::byte> bytes)
      : name_(std::move(name)), bytes_(bytes) {}
  const std::string& name() const override { return name_; }
  std::uint64_t size() const override { return bytes_.size(); }
  void read_at(std::uint64_t offset, std::span<std::byte> out) const override;

 private:
  std::string name_;
  std::span<const std::byte> bytes_;
};

}  // namespace weightmap::io
