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

// Throws Error(invalid_argument) naming the base tensor and the LoRA file when `target` does
// not fit its module: rows [row_begin, row_begin + row_count) outside the base's `rows`, an
// up factor whose rows are not row_count, a down factor (with a LoCon window) whose columns
// are not `cols`, a diff that is not [row_count, cols]. match_lora checks what it matches;
// this guards every use (targets may be built by hand) before anything is read or written.
void check_target_fits(const LoraFile& lora, const LoraTarget& target);

struct PreparedPatch {
  std::uint64_t rows = 0;  // of the base tensor as a matrix
  std::uint64_t cols = 0;
  // The rows it adds to, [row_begin, row_begin + row_count): a slice of a fused tensor.
  std::uint64_t row_begin = 0;
  std::uint64_t row_count = 0;
  std::uint64_t rank = 0;   // 0 for a diff
  std::vector<float> up;    // [row_count, rank]
  std::vector<float> down;  // [rank, cols]
  // A diff ([row_count, cols]): read from here, tile by tile (never a whole f32 copy).
  const io::FileReader* diff_reader = nullptr;
  const TensorInfo* diff = nullptr;
  float scale = 0;
};

// `readers` must be the readers of `lora` and outlive the result; `target` passed
// check_target_fits.
PreparedPatch prepare_patch(const LoraFile& lora, const LoraReaders& readers,
                            const LoraTarget& target, float multiplier);

}  // namespace weightmap::lora
