#include "lora/lora_factors.hpp"

#include <fmt/format.h>

#include "weightmap/convert.hpp"
#include "weightmap/error.hpp"

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

void check_target_fits(const LoraFile& lora, const LoraTarget& target) {
  const auto fail = [&](const std::string& message) {
    throw Error(ErrorCode::invalid_argument, message, {lora.path(), printable(target.base_tensor)});
  };
  if (target.module >= lora.modules.size()) {
    fail(fmt::format("the LoRA target names module {} of a LoRA with {} modules", target.module,
                     lora.modules.size()));
  }
  const LoraModule& module = lora.modules[target.module];
  const std::string name = printable(module.name);
  const std::uint64_t begin = target.row_begin;
  const std::uint64_t count = target.row_count;
  if (begin > target.rows || count > target.rows - begin) {
    fail(fmt::format("LoRA module {} patches rows [{}, {}) of a base tensor with {} rows", name,
                     begin, begin + count, target.rows));
  }
  const bool fused = count != target.rows;
  const std::string rows_text =
      fused ? fmt::format("the {} rows [{}, {}) it patches", count, begin, begin + count)
            : fmt::format("the {} rows of the base tensor", count);
  if (module.kind == LoraKind::diff) {
    const std::uint64_t elements = module.diff->element_count();
    const bool fits = target.cols == 0
                          ? elements == 0
                          : elements % target.cols == 0 && elements / target.cols == count;
    if (!fits) {
      fail(fmt::format("LoRA module {} has a difference of {} elements, not {} columns for {}",
                       name, elements, target.cols, rows_text));
    }
    return;
  }
  const std::uint64_t up_rows = module.up->shape.empty() ? 1 : module.up->shape[0];
  if (up_rows != count || module.up->element_count() / module.rank != count) {
    fail(
        fmt::format("LoRA module {} has an up factor of {} rows for {}", name, up_rows, rows_text));
  }
  std::uint64_t cols = module.down->element_count() / module.rank;
  if (module.kind == LoraKind::locon_mid) {
    const std::uint64_t window = module.mid->element_count() / (module.rank * module.rank);
    cols = window != 0 && cols > UINT64_MAX / window ? 0 : cols * window;
  }
  if (cols != target.cols) {
    fail(fmt::format("LoRA module {} has a down factor of {} columns for a base tensor of {}", name,
                     cols, target.cols));
  }
}

PreparedPatch prepare_patch(const LoraFile& lora, const LoraReaders& readers,
                            const LoraTarget& target, float multiplier) {
  const LoraModule& module = lora.modules[target.module];
  PreparedPatch patch;
  patch.rows = target.rows;
  patch.cols = target.cols;
  patch.row_begin = target.row_begin;
  patch.row_count = target.row_count;
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
