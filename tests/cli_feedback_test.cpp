// What the command line tells its user: the one progress bar (bytes, rate, time left), --json
// for sample, realign, lora merge and bench, the smallest size `sample` can write, and a
// file without LoRA modules given to `lora`.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <chrono>
#include <cstdint>
#include <sstream>
#include <string>

#include "cli/bench_command.hpp"
#include "cli/cli.hpp"
#include "cli/load_command.hpp"
#include "cli/progress_bar.hpp"
#include "cli/sample.hpp"
#include "lora_fixtures.hpp"
#include "support/cli_run.hpp"
#include "support/json_dom.hpp"
#include "support/safetensors_bytes.hpp"
#include "support/temp_dir.hpp"
#include "weightmap/model.hpp"

namespace weightmap::cli {
namespace {

using test::run_cli_captured;
using testing::TempDir;
constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;

std::string small_sample(const TempDir& dir, const std::string& name) {
  const std::string path = dir / name;
  const auto r = run_cli_captured({"sample", path, "--size", "1M", "--tensors", "20"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  return path;
}

TEST(ProgressBarText, BytesRateAndTimeLeft) {
  std::ostringstream err;
  const ProgressBar bar(err, true, "loading", 2 * kGiB);
  EXPECT_EQ(bar.line(kGiB, std::chrono::seconds(1), ""),
            "loading [###############               ]  50.0% 1.0 GiB of 2.0 GiB, 1.07 GB/s, 1 s "
            "left");
  EXPECT_EQ(bar.line(kGiB / 8, std::chrono::seconds(2), ""),
            "loading [#                             ]   6.2% 128.0 MiB of 2.0 GiB, 0.07 GB/s, 30 "
            "s left");
  EXPECT_EQ(bar.line(kGiB / 64, std::chrono::seconds(2), ""),
            "loading [                              ]   0.8% 16.0 MiB of 2.0 GiB, 0.01 GB/s, 4 "
            "min 14 s left");
  // No rate before there is time to measure it; none left at the end.
  EXPECT_EQ(bar.line(0, std::chrono::seconds(0), ""),
            "loading [                              ]   0.0% 0 B of 2.0 GiB");
  EXPECT_EQ(bar.line(2 * kGiB, std::chrono::seconds(2), ""),
            "loading [##############################] 100.0% 2.0 GiB of 2.0 GiB, 1.07 GB/s");
  const ProgressBar steps(err, true, "bench", 40, ProgressBar::Unit::steps);
  EXPECT_EQ(steps.line(3, std::chrono::seconds(1), "mmap"),
            "bench [##                            ] 3/40 mmap");
}

TEST(ProgressBarText, DrawsInPlaceAndClearsItsLine) {
  std::ostringstream err;
  {
    ProgressBar bar(err, true, "x", 100);
    bar.update(100);
    bar.finish();
  }
  const std::string text = err.str();
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.front(), '\r');
  EXPECT_NE(text.find("100.0% 100 B of 100 B"), std::string::npos) << text;
  EXPECT_EQ(text.back(), '\r');  // the line is blank again for what comes next
  std::ostringstream quiet;
  ProgressBar off(quiet, false, "x", 100);
  off.update(50);
  off.finish();
  EXPECT_EQ(quiet.str(), "");
}

TEST(CliLoadProgress, BarsForTheLoadAndTheReadingOnlyWhenAsked) {
  const TempDir dir;
  LoadCommandOptions options;
  options.sources = {{small_sample(dir, "m.safetensors"), ""}};
  options.mode = LoadMode::read;  // copied, so the loader's callback runs
  options.progress = true;
  std::ostringstream out, err;
  ASSERT_EQ(run_load(options, out, err), kExitOk) << err.str();
  EXPECT_NE(err.str().find("\rloading ["), std::string::npos) << err.str();
  EXPECT_NE(err.str().find("\rreading ["), std::string::npos) << err.str();
  // The CLI asks for bars only on a terminal: a test's stream, or --json, gets none.
  const auto r = run_cli_captured({"load", options.sources[0].path, "--mode", "read"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.err, "");
}

TEST(CliJson, SampleWritesOneObject) {
  const TempDir dir;
  const std::string path = dir / "m.gguf";
  const auto r = run_cli_captured(
      {"sample", path, "--format", "gguf", "--size", "1M", "--tensors", "20", "--json"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  const auto json = test::parse_json(r.out);
  EXPECT_EQ(test::json_text(*json, "path"), path);
  EXPECT_EQ(test::json_text(*json, "format"), "gguf");
  EXPECT_EQ(test::json_text(*json, "dtype"), "f16");
  EXPECT_EQ(test::json_u64(*json, "tensors"), 20u);
  EXPECT_EQ(test::json_u64(*json, "bytes"), std::filesystem::file_size(path));
  const Model model = open_model(path);
  std::uint64_t tensor_bytes = 0;
  for (const TensorInfo& t : model.tensors()) tensor_bytes += t.nbytes;
  EXPECT_EQ(test::json_u64(*json, "tensor_bytes"), tensor_bytes);
}

TEST(CliJson, RealignWritesOneObject) {
  const TempDir dir;
  testing::SafetensorsBuilder builder;
  builder.add("a", "F32", {16}).add("odd", "F32", {3}).add("b", "F16", {64}).add("odd2", "U8", {6});
  const std::string in = dir / "in.safetensors";
  testing::write_file(in, builder.bytes());
  const std::string out = dir / "out.safetensors";
  const auto r = run_cli_captured({"realign", in, "-o", out, "--json"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  const auto json = test::parse_json(r.out);
  EXPECT_EQ(test::json_text(*json, "path"), out);
  EXPECT_EQ(test::json_text(*json, "input"), in);
  EXPECT_EQ(test::json_u64(*json, "tensors"), 4u);
  EXPECT_EQ(test::json_u64(*json, "alignment"), 64u);
  EXPECT_EQ(test::json_u64(*json, "bytes"), std::filesystem::file_size(out));
  bool reordered = false;
  ASSERT_EQ(json->root["reordered"].get(reordered), simdjson::SUCCESS);
  EXPECT_TRUE(reordered);
  simdjson::dom::array unaligned;
  ASSERT_EQ(json->root["unaligned"].get(unaligned), simdjson::SUCCESS);
  ASSERT_EQ(unaligned.size(), 1u);
  EXPECT_EQ(std::string_view(unaligned.at(0)["tensor"]), "odd2");
  EXPECT_EQ(std::uint64_t(unaligned.at(0)["offset"]), open_model(out).find("odd2")->offset);
}

// A base with one tensor a kohya module patches, and a LoRA with that module and one that
// matches nothing.
struct LoraFiles {
  TempDir dir;
  std::string base = dir / "base.safetensors";
  std::string lora = dir / "lora.safetensors";
  LoraFiles() {
    using lora_test::random_tensor;
    lora_test::write_tensors(
        base, {random_tensor("model.diffusion_model.input_blocks.1.1.proj_in.weight", DType::F16,
                             {6, 8}, 1)});
    lora_test::write_tensors(
        lora,
        {random_tensor("lora_unet_input_blocks_1_1_proj_in.lora_down.weight", DType::F16, {2, 8},
                       3),
         random_tensor("lora_unet_input_blocks_1_1_proj_in.lora_up.weight", DType::F16, {6, 2}, 4),
         random_tensor("lora_unet_middle_block_0.lora_down.weight", DType::F16, {2, 8}, 5),
         random_tensor("lora_unet_middle_block_0.lora_up.weight", DType::F16, {6, 2}, 6)});
  }
};

TEST(CliJson, LoraMergeWritesOneObject) {
  const LoraFiles f;
  const std::string out = f.dir / "merged.safetensors";
  const auto r = run_cli_captured({"lora", "merge", f.base, f.lora + ":0.5", "-o", out, "--json"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  const auto json = test::parse_json(r.out);
  EXPECT_EQ(test::json_text(*json, "path"), out);
  EXPECT_EQ(test::json_text(*json, "base"), f.base);
  EXPECT_EQ(test::json_text(*json, "format"), "safetensors");
  EXPECT_EQ(test::json_u64(*json, "tensors"), 1u);
  EXPECT_EQ(test::json_u64(*json, "patches"), 1u);
  EXPECT_EQ(test::json_u64(*json, "bytes"), std::filesystem::file_size(out));
  simdjson::dom::array loras;
  ASSERT_EQ(json->root["loras"].get(loras), simdjson::SUCCESS);
  ASSERT_EQ(loras.size(), 1u);
  EXPECT_EQ(std::string_view(loras.at(0)["path"]), f.lora);
  EXPECT_EQ(double(loras.at(0)["multiplier"]), 0.5);
  EXPECT_EQ(std::uint64_t(loras.at(0)["modules"]), 2u);
  EXPECT_EQ(std::string_view(loras.at(0)["unmatched"].at(0)), "lora_unet_middle_block_0");
}

TEST(CliJson, BenchWritesOneObject) {
  const TempDir dir;
  BenchOptions options;
  options.path = small_sample(dir, "m.safetensors");
  options.runs = 1;
  options.json = true;
  std::ostringstream out, err;
  ASSERT_EQ(run_bench(options, out, err), kExitOk) << err.str();
  const auto json = test::parse_json(out.str());
  EXPECT_EQ(test::json_text(*json, "path"), options.path);
  EXPECT_EQ(test::json_u64(*json, "tensors"), 20u);
  EXPECT_EQ(test::json_u64(*json, "runs"), 1u);
  simdjson::dom::array floors, modes;
  ASSERT_EQ(json->root["floors"].get(floors), simdjson::SUCCESS);
  ASSERT_EQ(json->root["modes"].get(modes), simdjson::SUCCESS);
  EXPECT_EQ(floors.size(), 6u);  // open, two read()s, memcpy, two fills
  EXPECT_EQ(std::string_view(floors.at(0)["name"]), "index-only open");
  EXPECT_EQ(std::string_view(modes.at(0)["name"]), "mmap");
  EXPECT_GT(double(modes.at(0)["ratio_to_open"]), 0.0);
  EXPECT_EQ(std::string_view(modes.at(2)["name"]), "pread copy");
  EXPECT_GT(double(modes.at(2)["ratio_to_read_new"]), 0.0);
  EXPECT_EQ(err.str(), "");
}

// The size the error states is one that works: retried with it, the sample is written, and
// one byte less still fails (it is the boundary, not a guess above it).
TEST(CliSampleSize, TooSmallStatesTheSmallestSizeThatWorks) {
  const TempDir dir;
  for (const auto& [tensors, dtype, format] :
       {std::tuple{"1000", "f16", "safetensors"}, std::tuple{"7", "f32", "safetensors"},
        std::tuple{"300", "q4_0", "gguf"}, std::tuple{"50", "q8_0", "gguf"}}) {
    const std::string path = dir / "m";
    const auto small = run_cli_captured({"sample", path, "--size", "1K", "--tensors", tensors,
                                         "--dtype", dtype, "--format", format});
    ASSERT_EQ(small.code, kExitUsage) << small.err;
    const std::string marker = "(--size ";
    const auto at = small.err.find(marker);
    ASSERT_NE(at, std::string::npos) << small.err;
    const std::string size =
        small.err.substr(at + marker.size(), small.err.find(')', at) - at - marker.size());
    EXPECT_EQ(small.err, fmt::format("weightmap sample: {} tensors of {} do not fit in 1024 bytes "
                                     "(within 1%); the smallest size that fits is {} bytes "
                                     "(--size {})\n",
                                     tensors, dtype, size, size));
    const auto retried = run_cli_captured({"sample", path, "--size", size, "--tensors", tensors,
                                           "--dtype", dtype, "--format", format});
    EXPECT_EQ(retried.code, kExitOk) << retried.err;
    const auto less =
        run_cli_captured({"sample", path, "--size", std::to_string(std::stoull(size) - 1),
                          "--tensors", tensors, "--dtype", dtype, "--format", format});
    EXPECT_EQ(less.code, kExitUsage) << tensors << " " << dtype;
  }
}

TEST(CliLora, AFileWithoutLoraModulesIsAnError) {
  const LoraFiles f;
  const auto inspect = run_cli_captured({"lora", "inspect", f.base});
  EXPECT_EQ(inspect.code, kExitError);
  EXPECT_EQ(inspect.out, "");
  EXPECT_EQ(inspect.err,
            "weightmap: no LoRA modules in " + f.base + " (1 tensor, none with a LoRA suffix)\n");
  const auto merge =
      run_cli_captured({"lora", "merge", f.base, f.base, "-o", f.dir / "merged.safetensors"});
  EXPECT_EQ(merge.code, kExitError);
  EXPECT_EQ(merge.err, inspect.err);
}

}  // namespace
}  // namespace weightmap::cli
