// A LoRA module ready to add to a base tensor: its factors in f32 (a LoCon mid folded into
// the down factor), or, for a diff, where to read the difference tile by tile. Shared by
// immediate patching, runtime deltas and merging, so all three compute the same numbers.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "io/file_reader.hpp"
#include "weightmap/lora.hpp"

namespace weightmap::lora {

// Open readers of one LoRA file's parts (pread: a file that shrinks gives an Error).
class LoraReaders {
 public:
  explicit LoraReaders(const LoraFile& lora);
  const io::FileReader& operator[](std::uint32_t file) const { return *readers_[file]; }

 private:
  std::vector<std::unique_ptr<io::FileReader>> readers_;
};

// A whole LoRA tensor as f32 (factors are small: rank x a base dimension).
std::vector<float> read_f32(const io::FileReader& reader, const TensorInfo& tensor);

struct PreparedPatch {
  std::uint64_t rows = 0;
  std::uint64_t cols = 0;
  std::uint64_t rank = 0;   // 0 for a diff
  std::vector<float> up;    // [rows, rank]
  std::vector<float> down;  // [rank, cols]
  // A diff: read from here, tile by tile (never a whole f32 copy).
  const io::FileReader* diff_reader = nullptr;
  const TensorInfo* diff = nullptr;
  float scale = 0;
};

// `readers` must be the readers of `lora` and outlive the result.
PreparedPatch prepare_patch(const LoraFile& lora, const LoraReaders& readers,
                            const LoraTarget& target, float multiplier);

}  // namespace weightmap::lora
