#include "lora/lora_factors.hpp"

#include "weightmap/convert.hpp"

namespace weightmap::lora {

LoraReaders::LoraReaders(const LoraFile& lora) {
  for (const auto& file : lora.model.files()) {
    readers_.push_back(std::make_unique<io::FileReader>(file.path));
  }
}

std::vector<float> read_f32(const io::FileReader& reader, const TensorInfo& tensor) {
  // The reader checked dtype (f32/f16/bf16) and contiguity; sizes were validated by format/.
  const auto elements = static_cast<std::size_t>(tensor.element_count());
  std::vector<std::byte> raw(static_cast<std::size_t>(tensor.nbytes));
  reader.read_at(tensor.offset, raw);
  std::vector<float> out(elements);
  convert(tensor.dtype, raw, DType::F32, std::as_writable_bytes(std::span(out)), elements);
  return out;
}

namespace {

// down'[a, (i, h, w)] = sum_b mid[a, b, h, w] * down[b, i]: the convolution's window moves
// into the down factor, so every kind becomes up [rows, rank] x down [rank, cols].
std::vector<float> fold_mid(const std::vector<float>& mid, const std::vector<float>& down,
                            std::uint64_t rank, std::uint64_t in, std::uint64_t window) {
  std::vector<float> out(static_cast<std::size_t>(rank * in * window), 0.0f);
  for (std::uint64_t a = 0; a < rank; ++a) {
    for (std::uint64_t b = 0; b < rank; ++b) {
      const float* m = mid.data() + (a * rank + b) * window;
      const float* d = down.data() + b * in;
      float* o = out.data() + a * in * window;
      for (std::uint64_t i = 0; i < in; ++i) {
        for (std::uint64_t k = 0; k < window; ++k) o[i * window + k] += m[k] * d[i];
      }
    }
  }
  return out;
}

}  // namespace

PreparedPatch prepare_patch(const LoraFile& lora, const LoraReaders& readers,
                            const LoraTarget& target, float multiplier) {
  const LoraModule& module = lora.modules[target.module];
  PreparedPatch patch;
  patch.rows = target.rows;
  patch.cols = target.cols;
  patch.scale = lora_scale(module, multiplier);
  if (module.kind == LoraKind::diff) {
    patch.diff_reader = &readers[module.diff->file];
    patch.diff = &*module.diff;
    return patch;
  }
  patch.rank = module.rank;
  patch.up = read_f32(readers[module.up->file], *module.up);
  patch.down = read_f32(readers[module.down->file], *module.down);
  if (module.kind == LoraKind::locon_mid) {
    const auto mid = read_f32(readers[module.mid->file], *module.mid);
    const std::uint64_t in = module.down->element_count() / module.rank;
    const std::uint64_t window = module.mid->element_count() / (module.rank * module.rank);
    patch.down = fold_mid(mid, patch.down, module.rank, in, window);
  }
  return patch;
}

}  // namespace weightmap::lora
