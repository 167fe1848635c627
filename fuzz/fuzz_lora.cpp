// libFuzzer target: any bytes given to read_lora, then matched to a small base model and read
// as runtime deltas, give modules, matches and deltas of the promised sizes or a
// weightmap::Error, never a crash, hang, leak or unbounded allocation.
#include <unistd.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "support/temp_dir.hpp"
#include "weightmap/error.hpp"
#include "weightmap/lora.hpp"

namespace {

using weightmap::DType;
using weightmap::TensorInfo;

// Inputs whose deltas would take more f32 values than this are matched but not read: the
// fuzzer should spend its time in the reader, not in allocating.
constexpr std::uint64_t kMaxDeltaFloats = std::uint64_t{1} << 20;  // 4 MiB

// The tensors kohya, PEFT and GGUF LoRAs (and the seeds) name, in a file that does not exist:
// matching reads names and shapes only, and runtime deltas read only the LoRA file.
const weightmap::Model& base_model() {
  static const weightmap::Model model = [] {
    weightmap::ModelFile file;
    file.path = "/nonexistent/weightmap-fuzz-lora/base.safetensors";
    file.size = std::uint64_t{1} << 20;
    file.data_offset = 64;
    std::vector<TensorInfo> tensors;
    std::uint64_t offset = file.data_offset;
    const auto add = [&](std::string name, DType dtype, std::vector<std::uint64_t> shape) {
      TensorInfo tensor{std::move(name), dtype, std::move(shape), 0, offset, 0, {}};
      tensor.nbytes = tensor.element_count() * (dtype == DType::F32 ? 4 : 2);
      offset += tensor.nbytes;
      tensors.push_back(std::move(tensor));
    };
    add("model.diffusion_model.input_blocks.1.1.proj_in.weight", DType::F16, {64, 32});
    add("model.diffusion_model.input_blocks.1.1.proj_in.bias", DType::F16, {64});
    add("model.diffusion_model.input_blocks.1.0.in_layers.2.weight", DType::F16, {32, 16, 3, 3});
    add("cond_stage_model.transformer.text_model.encoder.layers.0.mlp.fc1.weight", DType::F32,
        {32, 16});
    add("blk.0.attn_q.weight", DType::F32, {32, 32});
    add("blk.0.ffn_up.weight", DType::F16, {48, 32});
    return weightmap::Model({file}, std::move(tensors), {});
  }();
  return model;
}

// read_lora takes a path: each input goes to one file in the fuzzer's own folder, removed
// when the fuzzer exits.
const std::string& input_path() {
  static const weightmap::testing::TempDir dir("weightmap-fuzz-lora");
  static const std::string path = dir / "input.bin";
  return path;
}

// Saturates instead of wrapping, so a hostile shape cannot sneak under the bound.
std::uint64_t times(std::uint64_t a, std::uint64_t b) {
  std::uint64_t out = 0;
  return __builtin_mul_overflow(a, b, &out) ? UINT64_MAX : out;
}
std::uint64_t plus(std::uint64_t a, std::uint64_t b) {
  std::uint64_t out = 0;
  return __builtin_add_overflow(a, b, &out) ? UINT64_MAX : out;
}

std::uint64_t delta_floats(const weightmap::LoraFile& lora, const weightmap::LoraTarget& target) {
  const weightmap::LoraModule& module = lora.modules[target.module];
  if (module.kind == weightmap::LoraKind::diff) return times(target.rows, target.cols);
  std::uint64_t floats = times(module.rank, plus(target.rows, target.cols));
  floats = plus(floats, plus(module.up->element_count(), module.down->element_count()));
  if (module.mid) floats = plus(floats, module.mid->element_count());
  return floats;
}

void check_deltas(const weightmap::LoraUse& use) {
  std::uint64_t floats = 0;
  for (const auto& target : use.match.targets)
    floats = plus(floats, delta_floats(*use.lora, target));
  if (floats > kMaxDeltaFloats) return;
  const auto deltas = weightmap::lora_runtime_deltas(std::span(&use, 1));
  for (const auto& [name, list] : deltas) {
    for (const weightmap::LoraDelta& delta : list) {
      // What an engine relies on: factors of exactly the promised sizes.
      const bool sizes_hold = delta.rank == 0 ? delta.full.size() == delta.rows * delta.cols &&
                                                    delta.up.empty() && delta.down.empty()
                                              : delta.up.size() == delta.rows * delta.rank &&
                                                    delta.down.size() == delta.rank * delta.cols &&
                                                    delta.full.empty();
      if (!sizes_hold) __builtin_trap();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string& path = input_path();
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  try {
    const auto lora = std::make_shared<const weightmap::LoraFile>(weightmap::read_lora(path));
    for (const auto& module : lora->modules) {
      // read_lora refuses or ignores an alpha that is not a finite float.
      if (!std::isfinite(module.alpha)) __builtin_trap();
    }
    // The presets' tables run on any names: the interpreter must hold up to hostile ones.
    const bool strict[] = {false, true, false, false};
    const weightmap::LoraNameRules rules[] = {
        weightmap::sd_lora_name_rules(), weightmap::plain_lora_name_rules(),
        weightmap::lora_preset_rules("flux"), weightmap::lora_preset_rules("sdxl")};
    for (std::size_t i = 0; i < std::size(rules); ++i) {
      try {
        const weightmap::LoraUse use{
            lora, weightmap::match_lora(*lora, base_model(), rules[i], strict[i]), 0.5f};
        for (const auto& target : use.match.targets) {
          if (target.module >= lora->modules.size()) __builtin_trap();
          if (target.row_begin > target.rows || target.row_count > target.rows - target.row_begin) {
            __builtin_trap();
          }
        }
        check_deltas(use);
      } catch (const weightmap::Error&) {
      }
    }
  } catch (const weightmap::Error&) {
  }
  return 0;
}
