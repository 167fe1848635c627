// `weightmap realign` through the command line: what it prints, its exit codes, and the
// recommendation `weightmap inspect` makes for files with misaligned tensors.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "support/cli_run.hpp"
#include "support/file_bytes.hpp"
#include "support/safetensors_bytes.hpp"
#include "support/temp_dir.hpp"
#include "weightmap/model.hpp"
#include "weightmap/writer.hpp"

namespace weightmap {
namespace {

namespace fs = std::filesystem;
using test::run_cli_captured;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::TempDir;

// "a" (64 B), "odd" (12 B, at data byte 64), "b" (128 B, at 76), "odd2" (6 B, at 204): the
// header is padded to 8 bytes, as the python writer does.
std::string write_fixture(const TempDir& dir) {
  testing::SafetensorsBuilder builder;
  builder.add("a", "F32", {16}).add("odd", "F32", {3}).add("b", "F16", {64}).add("odd2", "U8", {6});
  const std::string path = dir / "model.safetensors";
  testing::write_file(path, builder.bytes());
  return path;
}

TEST(RealignCli, PrintsWhatItWroteAndTheTensorsItCouldNotAlign) {
  TempDir dir;
  const std::string in = write_fixture(dir);
  const std::string out = dir / "out.safetensors";
  const auto result = run_cli_captured({"realign", in, "-o", out});
  ASSERT_EQ(result.code, 0) << result.err;
  EXPECT_EQ(result.err, "");
  const auto size = fs::file_size(out);
  const auto odd2 = open_model(out).find("odd2")->offset;
  EXPECT_EQ(result.out,
            fmt::format("wrote {}: safetensors, 4 tensors, {} B, alignment 64\n"
                        "order: tensors whose size is not a multiple of 64 bytes moved to the "
                        "end (safetensors allows no gaps between tensors)\n"
                        "not aligned: 1 tensor is not on a 64-byte boundary: safetensors allows "
                        "no gaps, and the sizes before it do not add up to a multiple of 64\n"
                        "  odd2 at byte {}\n"
                        "--padding-tensors aligns every tensor by filling the gaps with extra U8 "
                        "tensors (loaders that want exactly the model's tensors may refuse "
                        "them)\n",
                        out, size, odd2));
}

TEST(RealignCli, PaddingTensorsAlignEveryTensor) {
  TempDir dir;
  const std::string in = write_fixture(dir);
  const std::string out = dir / "out.safetensors";
  const auto result =
      run_cli_captured({"realign", in, "-o", out, "--alignment", "256", "--padding-tensors"});
  ASSERT_EQ(result.code, 0) << result.err;
  EXPECT_EQ(result.out,
            fmt::format("wrote {}: safetensors, 4 tensors, {:.1f} KiB, alignment 256\n"
                        "order: tensors whose size is not a multiple of 256 bytes moved to the "
                        "end (safetensors allows no gaps between tensors)\n"
                        "padding: 3 padding tensors (564 B) named __padding_N__ fill the gaps\n"
                        "every tensor starts on a 256-byte boundary\n",
                        out, static_cast<double>(fs::file_size(out)) / 1024));
}

TEST(RealignCli, GgufSaysEveryTensorIsAligned) {
  TempDir dir;
  const std::string in = dir / "in.gguf";
  const std::string out = dir / "out.gguf";
  write_gguf(in, {{"t", DType::F32, {3}}},
             [](std::size_t, std::uint64_t, std::span<std::byte> bytes) {
               std::fill(bytes.begin(), bytes.end(), std::byte{1});
             });
  const auto result = run_cli_captured({"realign", in, "--output", out, "--alignment", "128"});
  ASSERT_EQ(result.code, 0) << result.err;
  EXPECT_EQ(result.out, fmt::format("wrote {}: gguf, 1 tensor, {} B, alignment 128\n"
                                    "every tensor starts on a 128-byte boundary\n",
                                    out, fs::file_size(out)));
}

TEST(RealignCli, AlignmentThatIsNotAPowerOfTwoIsAUsageError) {
  TempDir dir;
  const std::string in = write_fixture(dir);
  const auto result =
      run_cli_captured({"realign", in, "-o", dir / "out.safetensors", "--alignment", "48"});
  EXPECT_EQ(result.code, 2);
  EXPECT_EQ(result.out, "");
  EXPECT_THAT(result.err, HasSubstr("--alignment: not a power of two from 8 to 1048576: 48"));
  EXPECT_FALSE(fs::exists(dir / "out.safetensors"));
}

TEST(RealignCli, OutputSameAsInputIsAUsageErrorUnderAnyName) {
  TempDir dir;
  const std::string in = write_fixture(dir);
  const std::string before = testing::file_bytes(in);
  fs::create_hard_link(in, dir / "hard.safetensors");
  fs::create_symlink(in, dir / "link.safetensors");
  for (const std::string& out : {in, dir / "hard.safetensors", dir / "link.safetensors"}) {
    const auto result = run_cli_captured({"realign", in, "-o", out});
    EXPECT_EQ(result.code, 2);
    EXPECT_EQ(result.out, "");
    EXPECT_EQ(result.err,
              fmt::format("weightmap realign: {}: the output is the input file {} itself; "
                          "weightmap never writes over an input, so write to another path\n",
                          out, in));
  }
  EXPECT_EQ(testing::file_bytes(in), before);
}

TEST(RealignCli, MissingInputFailsWithExitCode1) {
  TempDir dir;
  const auto result = run_cli_captured({"realign", dir / "missing.gguf", "-o", dir / "out.gguf"});
  EXPECT_EQ(result.code, 1);
  EXPECT_EQ(result.err, fmt::format("weightmap: {}: cannot open: No such file or directory\n",
                                    dir / "missing.gguf"));
}

TEST(RealignCli, OutputIsRequired) {
  TempDir dir;
  const auto result = run_cli_captured({"realign", write_fixture(dir)});
  EXPECT_EQ(result.code, 2);
  EXPECT_THAT(result.err, HasSubstr("--output is required"));
}

// --- the recommendation in `weightmap inspect` ---

TEST(RealignCli, InspectRecommendsRealignForMisalignedTensors) {
  TempDir dir;
  const std::string in = write_fixture(dir);
  const auto result = run_cli_captured({"inspect", in});
  ASSERT_EQ(result.code, 0) << result.err;
  EXPECT_THAT(result.out,
              HasSubstr(fmt::format(
                  "misaligned: 4 tensors are not on a 32-byte boundary (see the align column of "
                  "--all)\n"
                  "realign: `weightmap realign {} -o OUT --padding-tensors` makes every tensor "
                  "mappable for devices that need 32- or 64-byte alignment (the CPU maps them "
                  "as they are)\n",
                  in)));
}

TEST(RealignCli, InspectLeavesOutPaddingTensorsWhenReorderingSuffices) {
  TempDir dir;
  testing::SafetensorsBuilder builder;
  builder.add("odd", "F32", {3}).add("a", "F32", {16});
  const std::string in = dir / "one odd.safetensors";
  testing::write_file(in, builder.bytes());
  const auto result = run_cli_captured({"inspect", in});
  EXPECT_THAT(result.out,
              HasSubstr(fmt::format("realign: `weightmap realign '{}' -o OUT` makes every tensor "
                                    "mappable for devices that need 32- or 64-byte alignment "
                                    "(the CPU maps them as they are)\n",
                                    in)));
}

TEST(RealignCli, InspectRecommendsNothingForARealignedFile) {
  TempDir dir;
  const std::string in = write_fixture(dir);
  const std::string out = dir / "out.safetensors";
  ASSERT_EQ(run_cli_captured({"realign", in, "-o", out, "--padding-tensors"}).code, 0);
  const auto result = run_cli_captured({"inspect", out});
  // The padding tensors themselves start off the boundary, and realign cannot do better.
  EXPECT_THAT(result.out, Not(HasSubstr("realign:")));
}

}  // namespace
}  // namespace weightmap
