// Writes the seed corpus of fuzz_lora: one small valid LoRA file of each kind read_lora
// groups (kohya with alpha, PEFT, LoCon with mid, diffs, a GGUF adapter), each naming tensors
// of the fuzzer's base model so matching and runtime deltas are reached from the start.
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "lora_fixtures.hpp"

namespace {

namespace fs = std::filesystem;
using weightmap::DType;
using weightmap::lora_test::FloatTensor;
using weightmap::lora_test::random_tensor;
using weightmap::lora_test::write_tensors;

FloatTensor scalar(std::string name, float value) {
  return {std::move(name), DType::F32, {}, {value}};
}

// A GGUF adapter as llama.cpp's convert_lora_to_gguf.py writes one: general.type = adapter,
// adapter.type = lora and a numeric adapter.lora.alpha (the fixtures write string metadata
// only).
void write_gguf_adapter(const std::string& path, const std::vector<FloatTensor>& tensors) {
  std::vector<weightmap::TensorToWrite> layout;
  std::vector<std::vector<std::byte>> bytes;
  for (const auto& tensor : tensors) {
    layout.push_back({tensor.name, tensor.dtype, tensor.shape});
    bytes.push_back(weightmap::lora_test::stored_bytes(tensor));
  }
  using weightmap::MetadataType;
  using weightmap::MetadataValue;
  weightmap::GgufWriteOptions options;
  options.metadata = {
      {"general.type",
       MetadataValue{MetadataType::string, MetadataType::string, std::string("adapter")}},
      {"adapter.type",
       MetadataValue{MetadataType::string, MetadataType::string, std::string("lora")}},
      {"adapter.lora.alpha", MetadataValue{MetadataType::f32, MetadataType::string, 8.0}},
  };
  const weightmap::TensorBytesSource source = [&](std::size_t index, std::uint64_t offset,
                                                  std::span<std::byte> out) {
    std::copy_n(bytes[index].begin() + static_cast<std::ptrdiff_t>(offset), out.size(),
                out.begin());
  };
  weightmap::write_gguf(path, layout, source, options);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const fs::path dir = fs::path(argv[1]) / "lora";
  fs::create_directories(dir);
  const auto file = [&](const char* name) { return (dir / name).string(); };

  write_tensors(file("seed-kohya.safetensors"),
                {
                    scalar("lora_unet_input_blocks_1_1_proj_in.alpha", 2.0f),
                    random_tensor("lora_unet_input_blocks_1_1_proj_in.lora_down.weight", DType::F16,
                                  {4, 32}, 1),
                    random_tensor("lora_unet_input_blocks_1_1_proj_in.lora_up.weight", DType::F16,
                                  {64, 4}, 2),
                    scalar("lora_te_text_model_encoder_layers_0_mlp_fc1.alpha", 1.0f),
                    random_tensor("lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight",
                                  DType::BF16, {2, 16}, 3),
                    random_tensor("lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight",
                                  DType::BF16, {32, 2}, 4),
                },
                {{"ss_network_alpha", "2"}});
  write_tensors(
      file("seed-peft.safetensors"),
      {
          random_tensor("base_model.model.blk.0.attn_q.lora_A.weight", DType::F32, {4, 32}, 5),
          random_tensor("base_model.model.blk.0.attn_q.lora_B.weight", DType::F32, {32, 4}, 6),
          random_tensor("base_model.model.blk.0.ffn_up.lora_A.weight", DType::F16, {2, 32}, 7),
          random_tensor("base_model.model.blk.0.ffn_up.lora_B.weight", DType::F16, {48, 2}, 8),
      },
      {{"lora_alpha", "8"}});
  write_tensors(file("seed-locon.safetensors"),
                {
                    scalar("lora_unet_input_blocks_1_0_in_layers_2.alpha", 4.0f),
                    random_tensor("lora_unet_input_blocks_1_0_in_layers_2.lora_down.weight",
                                  DType::F16, {4, 16, 3, 3}, 9),
                    random_tensor("lora_unet_input_blocks_1_0_in_layers_2.lora_up.weight",
                                  DType::F16, {32, 4, 1, 1}, 10),
                });
  write_tensors(file("seed-locon-mid.safetensors"),
                {
                    scalar("lora_unet_input_blocks_1_0_in_layers_2.alpha", 2.0f),
                    random_tensor("lora_unet_input_blocks_1_0_in_layers_2.lora_down.weight",
                                  DType::F32, {4, 16, 1, 1}, 11),
                    random_tensor("lora_unet_input_blocks_1_0_in_layers_2.lora_mid.weight",
                                  DType::F32, {4, 4, 3, 3}, 12),
                    random_tensor("lora_unet_input_blocks_1_0_in_layers_2.lora_up.weight",
                                  DType::F32, {32, 4, 1, 1}, 13),
                });
  write_tensors(
      file("seed-diff.safetensors"),
      {
          random_tensor("diffusion_model.input_blocks.1.1.proj_in.diff", DType::F16, {64, 32}, 14),
          random_tensor("diffusion_model.input_blocks.1.1.proj_in.diff_b", DType::F32, {64}, 15),
      });
  write_gguf_adapter(file("seed-adapter.gguf"),
                     {
                         random_tensor("blk.0.attn_q.weight.lora_a", DType::F32, {4, 32}, 16),
                         random_tensor("blk.0.attn_q.weight.lora_b", DType::F32, {32, 4}, 17),
                         random_tensor("blk.0.ffn_up.weight.lora_a", DType::F16, {2, 32}, 18),
                         random_tensor("blk.0.ffn_up.weight.lora_b", DType::F16, {48, 2}, 19),
                     });
  return 0;
}
