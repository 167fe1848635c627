// `weightmap lora inspect` and `weightmap lora merge`.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <simdjson.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <span>
#include <string>

#include "cli/lora_command.hpp"
#include "cli/quantized_codec.hpp"
#include "lora_fixtures.hpp"
#include "support/cli_run.hpp"
#include "support/file_bytes.hpp"
#include "support/safetensors_bytes.hpp"
#include "support/temp_dir.hpp"
#include "weightmap/error.hpp"
#include "weightmap/lora.hpp"

namespace weightmap {
namespace {

namespace fs = std::filesystem;
using lora_test::FloatTensor;
using lora_test::random_tensor;
using lora_test::write_tensors;
using test::run_cli_captured;
using testing::TempDir;

FloatTensor rounded(FloatTensor tensor) {
  for (auto& value : tensor.values) value = lora_test::round_to(tensor.dtype, value);
  return tensor;
}

struct Files {
  TempDir dir;
  FloatTensor proj = rounded(random_tensor("model.diffusion_model.input_blocks.1.1.proj_in.weight",
                                           DType::F16, {6, 8}, 1));
  FloatTensor other =
      rounded(random_tensor("model.diffusion_model.out.0.weight", DType::F16, {4}, 2));
  FloatTensor down = rounded(
      random_tensor("lora_unet_input_blocks_1_1_proj_in.lora_down.weight", DType::F16, {2, 8}, 3));
  FloatTensor up = rounded(
      random_tensor("lora_unet_input_blocks_1_1_proj_in.lora_up.weight", DType::F16, {6, 2}, 4));

  Files() {
    write_tensors(dir / "base.safetensors", {other, proj});
    write_tensors(
        dir / "lora.safetensors",
        {down,
         up,
         {"lora_unet_input_blocks_1_1_proj_in.alpha", DType::F32, {}, {1.0f}},
         random_tensor("lora_unet_middle_block_0.lora_down.weight", DType::F16, {2, 8}, 5),
         random_tensor("lora_unet_middle_block_0.lora_up.weight", DType::F16, {6, 2}, 6)});
  }
};

TEST(LoraCli, InspectWithBaseListsTargetsAndUnmatchedModules) {
  Files f;
  const auto result = run_cli_captured(
      {"lora", "inspect", f.dir / "lora.safetensors", "--base", f.dir / "base.safetensors"});
  EXPECT_EQ(result.code, 0) << result.err;
  EXPECT_EQ(result.out,
            f.dir / "lora.safetensors" +
                ": kohya LoRA, 2 modules\n"
                "name rules: sd1 (detected)\n"
                "  lora_unet_input_blocks_1_1_proj_in  lora  rank 2  alpha 1 (tensor)  -> "
                "model.diffusion_model.input_blocks.1.1.proj_in.weight\n"
                "      by sd1 unet (lora_unet_): as it stands\n"
                "  lora_unet_middle_block_0  lora  rank 2  alpha 2 (rank)  -> (no match)\n"
                "matched 1 of 2 modules, 1 unmatched, 0 ignored tensors\n"
                "unmatched 1:\n"
                "  lora_unet_middle_block_0\n");
}

TEST(LoraCli, InspectJson) {
  Files f;
  const auto result = run_cli_captured({"lora", "inspect", "--json", f.dir / "lora.safetensors",
                                        "--base", f.dir / "base.safetensors"});
  ASSERT_EQ(result.code, 0) << result.err;
  simdjson::dom::parser parser;
  const simdjson::dom::element doc = parser.parse(result.out);
  EXPECT_EQ(std::string_view(doc["naming"]), "kohya");
  EXPECT_EQ(std::uint64_t(doc["matched"]), 1u);
  EXPECT_EQ(std::string_view(doc["unmatched"].at(0)["module"]), "lora_unet_middle_block_0");
  const auto first = doc["modules"].at(0);
  EXPECT_EQ(std::string_view(first["kind"]), "lora");
  EXPECT_EQ(std::uint64_t(first["rank"]), 2u);
  EXPECT_EQ(std::string_view(first["target"]),
            "model.diffusion_model.input_blocks.1.1.proj_in.weight");
  EXPECT_TRUE(doc["modules"].at(1)["target"].is_null());
}

std::vector<float> tensor_values(const std::string& path, const std::string& name) {
  const Model model = open_model(path);
  const TensorInfo& info = *model.find(name);
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(info.offset));
  std::vector<std::byte> bytes(static_cast<std::size_t>(info.nbytes));
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  return lora_test::as_floats(info.dtype, bytes);
}

TEST(LoraCli, MergeWritesBasePlusTheLoraAsSafetensorsAndGguf) {
  Files f;
  for (const char* out : {"merged.safetensors", "merged.gguf"}) {
    const auto result = run_cli_captured({"lora", "merge", f.dir / "base.safetensors",
                                          f.dir / "lora.safetensors:0.5", "-o", f.dir / out});
    ASSERT_EQ(result.code, 0) << result.err;
    EXPECT_EQ(result.err, fmt::format("weightmap lora merge: {}: 1 module matches no base tensor "
                                      "(first: lora_unet_middle_block_0); --strict makes this an "
                                      "error\n",
                                      f.dir / "lora.safetensors"));
    EXPECT_TRUE(result.out.starts_with("wrote " + f.dir / out)) << result.out;
    // alpha 1, rank 2, multiplier 0.5: scale 0.25.
    const auto want = lora_test::reference_merge(f.proj.values, DType::F16, 6, 8,
                                                 {{f.up.values, f.down.values, 2, 0.25f}});
    EXPECT_EQ(tensor_values(f.dir / out, f.proj.name), want) << out;
    EXPECT_EQ(tensor_values(f.dir / out, f.other.name), f.other.values) << out;
  }
}

TEST(LoraCli, MergeStrictIsAnError) {
  Files f;
  const auto strict =
      run_cli_captured({"lora", "merge", "--strict", f.dir / "base.safetensors",
                        f.dir / "lora.safetensors", "-o", f.dir / "out.safetensors"});
  EXPECT_EQ(strict.code, 1);
  EXPECT_EQ(strict.err, "weightmap: " + f.dir / "lora.safetensors" +
                            ": 1 LoRA module matches no base tensor: lora_unet_middle_block_0\n");
}

TEST(LoraCli, MergeOfAQuantizedBaseGoesThroughGgmlOrIsRefusedWithoutIt) {
  Files f;
  write_tensors(f.dir / "q.gguf", {{"blk.0.w.weight", DType::Q8_0, {4, 32}, {}}}, {}, true);
  write_tensors(f.dir / "q_lora.safetensors",
                {random_tensor("blk.0.w.weight.lora_a", DType::F32, {2, 32}, 1),
                 random_tensor("blk.0.w.weight.lora_b", DType::F32, {4, 2}, 2)});
  const auto quantized = run_cli_captured(
      {"lora", "merge", f.dir / "q.gguf", f.dir / "q_lora.safetensors", "-o", f.dir / "q2.gguf"});
#if WEIGHTMAP_CLI_WITH_GGML
  // The same bytes as the library's merge with ggml's codec.
  ASSERT_EQ(quantized.code, 0) << quantized.err;
  const Model base = open_model(f.dir / "q.gguf");
  auto lora = std::make_shared<const LoraFile>(read_lora(f.dir / "q_lora.safetensors"));
  const LoraUse use{lora, match_lora(*lora, base, sd_lora_name_rules()), 1.0f};
  LoraMergeOptions options;
  options.format = FileFormat::gguf;
  options.quantized = cli::quantized_codec();
  ASSERT_NE(options.quantized, nullptr);
  write_merged_model(base, std::span(&use, 1), f.dir / "reference.gguf", options);
  const auto bytes_of = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  const std::string merged = bytes_of(f.dir / "q2.gguf");
  EXPECT_EQ(merged, bytes_of(f.dir / "reference.gguf"));
  EXPECT_NE(merged, bytes_of(f.dir / "q.gguf"));
  EXPECT_EQ(open_model(f.dir / "q2.gguf").find("blk.0.w.weight")->dtype, DType::Q8_0);
#else
  EXPECT_EQ(quantized.code, 1);
  EXPECT_EQ(quantized.err, "weightmap: " + f.dir / "q.gguf" +
                               ": quantized base tensor blk.0.w.weight needs the ggml adapter\n");
#endif
}

TEST(LoraCli, LoraArgumentsTakeAnOptionalMultiplier) {
  EXPECT_EQ(cli::parse_lora_argument("a.safetensors:0.5"),
            (std::pair<std::string, float>{"a.safetensors", 0.5f}));
  EXPECT_EQ(cli::parse_lora_argument("a.safetensors:-1"),
            (std::pair<std::string, float>{"a.safetensors", -1.0f}));
  EXPECT_EQ(cli::parse_lora_argument("a.safetensors"),
            (std::pair<std::string, float>{"a.safetensors", 1.0f}));
  EXPECT_EQ(cli::parse_lora_argument("dir:x/a.safetensors"),
            (std::pair<std::string, float>{"dir:x/a.safetensors", 1.0f}));
}

// `lora merge -o BASE` used to empty the base model: every input, under any name, is refused
// before anything is written, and the inputs keep every byte.
TEST(LoraCli, MergeRefusesAnOutputThatIsAnInputUnderAnyName) {
  Files f;
  const std::string base = f.dir / "base.safetensors";
  const std::string lora = f.dir / "lora.safetensors";
  const std::string base_before = testing::file_bytes(base);
  const std::string lora_before = testing::file_bytes(lora);
  fs::create_hard_link(base, f.dir / "base-hard.safetensors");
  fs::create_symlink(lora, f.dir / "lora-link.safetensors");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {base, base},
      {lora, lora},
      {f.dir / "base-hard.safetensors", base},
      {f.dir / "lora-link.safetensors", lora},
      {(f.dir.path() / "." / "base.safetensors").string(), base}};
  for (const auto& [out, input] : cases) {
    const auto result = run_cli_captured({"lora", "merge", base, lora, "-o", out});
    EXPECT_EQ(result.code, 2) << out;
    EXPECT_EQ(result.out, "");
    // After the warning about the module that matches nothing.
    EXPECT_TRUE(result.err.ends_with(
        fmt::format("\nweightmap lora merge: {}: the output is the input file {} itself; "
                    "weightmap never writes over an input, so write to another path\n",
                    out, input)))
        << result.err;
  }
  EXPECT_EQ(testing::file_bytes(base), base_before);
  EXPECT_EQ(testing::file_bytes(lora), lora_before);
}

TEST(LoraMerge, RefusesAnOutputThatIsAnInputWithAnInvalidArgumentError) {
  Files f;
  const std::string base_path = f.dir / "base.safetensors";
  const std::string lora_path = f.dir / "lora.safetensors";
  const std::string base_before = testing::file_bytes(base_path);
  const std::string lora_before = testing::file_bytes(lora_path);
  const Model base = open_model(base_path);
  auto lora = std::make_shared<const LoraFile>(read_lora(lora_path));
  const LoraUse use{lora, match_lora(*lora, base, sd_lora_name_rules()), 1.0f};
  fs::create_symlink(base_path, f.dir / "base-link.safetensors");
  fs::create_hard_link(lora_path, f.dir / "lora-hard.safetensors");
  for (const std::string& out :
       {base_path, lora_path, f.dir / "base-link.safetensors", f.dir / "lora-hard.safetensors"}) {
    try {
      write_merged_model(base, std::span(&use, 1), out);
      ADD_FAILURE() << out << " was written";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::invalid_argument);
      EXPECT_EQ(e.file(), out);
      EXPECT_TRUE(e.message().starts_with("the output is the input file ")) << e.what();
    }
  }
  EXPECT_EQ(testing::file_bytes(base_path), base_before);
  EXPECT_EQ(testing::file_bytes(lora_path), lora_before);
  // Another name is fine.
  write_merged_model(base, std::span(&use, 1), f.dir / "merged.safetensors");
  EXPECT_EQ(open_model(f.dir / "merged.safetensors").tensors().size(), 2u);
}

}  // namespace
}  // namespace weightmap
