// `weightmap sample`: synthetic models of a requested size, tensor count and dtype, with
// the same bytes for the same seed, readable by our readers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "cli/cli.hpp"
#include "cli/sample.hpp"
#include "io/file_reader.hpp"
#include "support/cli_run.hpp"
#include "support/safetensors_bytes.hpp"
#include "support/temp_dir.hpp"
#include "testbed/byte_size.hpp"
#include "testbed/sample_model.hpp"
#include "weightmap/model.hpp"

namespace weightmap::cli {
namespace {

namespace fs = std::filesystem;
using testbed::parse_byte_size;
using testbed::plan_sample_tensors;
using testing::TempDir;

using Result = test::CliResult;

Result cli(const std::vector<std::string>& args) { return test::run_cli_captured(args); }

Result sample(const SampleOptions& options) {
  std::ostringstream out;
  std::ostringstream err;
  const int code = run_sample(options, out, err);
  return {code, out.str(), err.str()};
}

// FNV-1a of the whole file.
std::uint64_t file_hash(const std::string& path) {
  const io::FileReader reader(path);
  std::vector<std::byte> bytes(static_cast<std::size_t>(reader.size()));
  reader.read_at(0, bytes);
  std::uint64_t hash = 0xcbf29ce484222325ull;
  for (const std::byte b : bytes) hash = (hash ^ static_cast<std::uint8_t>(b)) * 0x100000001b3ull;
  return hash;
}

std::uint64_t tensor_bytes(const Model& model) {
  std::uint64_t total = 0;
  for (const auto& t : model.tensors()) total += t.nbytes;
  return total;
}

float f16_to_float(std::uint16_t h) {
  const int exponent = (h >> 10) & 0x1f;
  const float magnitude =
      exponent == 0 ? std::ldexp(static_cast<float>(h & 0x3ff), -24)
                    : std::ldexp(1.0f + static_cast<float>(h & 0x3ff) / 1024.0f, exponent - 15);
  return (h & 0x8000) != 0 ? -magnitude : magnitude;
}

// Every element of every tensor as a float (plain float types only).
std::vector<float> all_values(const std::string& path, const Model& model) {
  const io::FileReader reader(path);
  std::vector<float> values;
  for (const auto& t : model.tensors()) {
    std::vector<std::byte> bytes(static_cast<std::size_t>(t.nbytes));
    reader.read_at(t.offset, bytes);
    const std::size_t width = dtype_info(t.dtype).block_bytes;
    for (std::size_t i = 0; i + width <= bytes.size(); i += width) {
      std::uint32_t raw = 0;
      std::memcpy(&raw, bytes.data() + i, width);
      float value = 0;
      if (t.dtype == DType::F16) {
        value = f16_to_float(static_cast<std::uint16_t>(raw));
      } else if (t.dtype == DType::BF16) {
        const std::uint32_t wide = raw << 16;
        std::memcpy(&value, &wide, 4);
      } else {
        std::memcpy(&value, &raw, 4);
      }
      values.push_back(value);
    }
  }
  return values;
}

TEST(CliSample, SameSeedSameBytesOtherSeedOtherBytes) {
  TempDir dir;
  for (const auto format : {FileFormat::safetensors, FileFormat::gguf}) {
    SampleOptions options;
    options.format = format;
    options.size = 3 << 20;
    options.tensors = 200;
    options.seed = 7;
    options.path = dir / "a";
    ASSERT_EQ(sample(options).code, kExitOk);
    options.path = dir / "b";
    ASSERT_EQ(sample(options).code, kExitOk);
    options.seed = 8;
    options.path = dir / "c";
    ASSERT_EQ(sample(options).code, kExitOk);
    EXPECT_EQ(file_hash(dir / "a"), file_hash(dir / "b"));
    EXPECT_NE(file_hash(dir / "a"), file_hash(dir / "c"));
  }
}

TEST(CliSample, HitsTheSizeAndTensorCountForEveryFormatAndDtype) {
  TempDir dir;
  struct Case {
    FileFormat format;
    DType dtype;
    std::uint64_t size;
    std::size_t tensors;
  };
  const std::vector<Case> cases = {
      {FileFormat::safetensors, DType::F16, 16 << 20, 1000},
      {FileFormat::safetensors, DType::BF16, 5 << 20, 300},
      {FileFormat::safetensors, DType::F32, 2 << 20, 1},
      {FileFormat::gguf, DType::F16, 16 << 20, 1000},
      {FileFormat::gguf, DType::F32, 1 << 20, 3},
      {FileFormat::gguf, DType::Q8_0, 8 << 20, 500},
      {FileFormat::gguf, DType::Q4_0, 8 << 20, 500},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(dtype_name(c.dtype)) + " " + std::string(file_format_name(c.format)) +
                 " " + std::to_string(c.tensors));
    SampleOptions options;
    options.path = dir / "m";
    options.format = c.format;
    options.dtype = c.dtype;
    options.size = c.size;
    options.tensors = c.tensors;
    const Result result = sample(options);
    ASSERT_EQ(result.code, kExitOk) << result.err;
    const Model model = open_model(options.path);
    EXPECT_EQ(model.files()[0].format, c.format);
    EXPECT_EQ(model.tensors().size(), c.tensors);
    const double total = static_cast<double>(tensor_bytes(model));
    EXPECT_NEAR(total, static_cast<double>(c.size), static_cast<double>(c.size) / 100);
    for (const auto& t : model.tensors()) EXPECT_EQ(t.dtype, c.dtype) << t.name;
  }
}

TEST(CliSample, ShapesLookLikeADiffusionModel) {
  const auto tensors = plan_sample_tensors(std::uint64_t{1} << 30, 1000, DType::F16);
  ASSERT_EQ(tensors.size(), 1000u);
  std::size_t by_rank[5] = {};
  std::vector<std::uint64_t> sizes;
  for (const auto& t : tensors) {
    ASSERT_LE(t.shape.size(), 4u) << t.name;
    ++by_rank[t.shape.size()];
    std::uint64_t elements = 1;
    for (const auto d : t.shape) elements *= d;
    sizes.push_back(elements * 2);
    EXPECT_TRUE(t.name.ends_with(".weight") || t.name.ends_with(".bias")) << t.name;
  }
  EXPECT_GT(by_rank[1], 400u);  // norms and biases
  EXPECT_GT(by_rank[2], 200u);  // linear weights
  EXPECT_GT(by_rank[4], 50u);   // convolutions
  EXPECT_TRUE(std::is_sorted(tensors.begin(), tensors.end(),
                             [](const auto& a, const auto& b) { return a.name < b.name; }));
  std::sort(sizes.rbegin(), sizes.rend());
  const double total = static_cast<double>(std::uint64_t{1} << 30);
  const double top3 = static_cast<double>(sizes[0] + sizes[1] + sizes[2]);
  EXPECT_GT(top3 / total, 0.4);
  EXPECT_LT(top3 / total, 0.6);
}

TEST(CliSample, ValuesAreSmallAndFinite) {
  TempDir dir;
  for (const DType dtype : {DType::F16, DType::BF16, DType::F32}) {
    SCOPED_TRACE(dtype_name(dtype));
    SampleOptions options;
    options.path = dir / "v.safetensors";
    options.dtype = dtype;
    options.size = 1 << 20;
    options.tensors = 50;
    ASSERT_EQ(sample(options).code, kExitOk);
    const auto values = all_values(options.path, open_model(options.path));
    ASSERT_FALSE(values.empty());
    std::size_t negative = 0;
    for (const float v : values) {
      ASSERT_TRUE(std::fabs(v) >= 0.0625f && std::fabs(v) < 0.125f) << v;
      negative += v < 0 ? 1 : 0;
    }
    EXPECT_GT(negative, values.size() / 3);
    EXPECT_LT(negative, values.size() * 2 / 3);
  }
}

TEST(CliSample, QuantizedBlocksHaveSmallFiniteScales) {
  TempDir dir;
  SampleOptions options;
  options.path = dir / "q.gguf";
  options.format = FileFormat::gguf;
  options.dtype = DType::Q8_0;
  options.size = 1 << 20;
  options.tensors = 20;
  ASSERT_EQ(sample(options).code, kExitOk);
  const Model model = open_model(options.path);
  const io::FileReader reader(options.path);
  for (const auto& t : model.tensors()) {
    std::vector<std::byte> bytes(static_cast<std::size_t>(t.nbytes));
    reader.read_at(t.offset, bytes);
    for (std::size_t block = 0; block < bytes.size(); block += 34) {
      std::uint16_t scale = 0;
      std::memcpy(&scale, bytes.data() + block, 2);
      const float d = f16_to_float(scale);
      ASSERT_TRUE(d >= 1.0f / 256 && d < 1.0f / 128) << t.name << " block " << block / 34;
    }
  }
}

TEST(CliSample, CommandLineWritesAFileThatOpens) {
  TempDir dir;
  const std::string path = dir / "cli.gguf";
  const Result result = cli({"sample", "--format", "gguf", "--size", "2M", "--tensors", "64",
                             "--dtype", "q4_0", "--seed", "3", path.c_str()});
  ASSERT_EQ(result.code, kExitOk) << result.err;
  EXPECT_TRUE(result.out.starts_with("wrote " + path + ": 64 tensors, ")) << result.out;
  const Model model = open_model(path);
  EXPECT_EQ(model.tensors().size(), 64u);
  EXPECT_NEAR(static_cast<double>(tensor_bytes(model)), 2 << 20, (2 << 20) / 100);
  const auto* seed = model.find_metadata("weightmap.sample.seed");
  ASSERT_NE(seed, nullptr);
  EXPECT_EQ(std::get<std::uint64_t>(seed->value.value), 3u);
}

TEST(CliSample, BadCommandLinesExitWith2) {
  TempDir dir;
  const std::string path = dir / "x";
  EXPECT_EQ(cli({"sample", "--size", "12Q", path.c_str()}).code, kExitUsage);
  EXPECT_EQ(cli({"sample", "--size", "0", path.c_str()}).code, kExitUsage);
  EXPECT_EQ(cli({"sample", "--size", "-5M", path.c_str()}).code, kExitUsage);
  EXPECT_EQ(cli({"sample", "--dtype", "f8", path.c_str()}).code, kExitUsage);
  EXPECT_EQ(cli({"sample", "--format", "onnx", path.c_str()}).code, kExitUsage);
  EXPECT_EQ(cli({"sample", "--tensors", "0", path.c_str()}).code, kExitUsage);
  EXPECT_EQ(cli({"sample"}).code, kExitUsage);
  const Result quantized = cli({"sample", "--dtype", "q8_0", path.c_str()});
  EXPECT_EQ(quantized.code, kExitUsage);
  EXPECT_EQ(quantized.err,
            "weightmap sample: --dtype q8_0 is not available for --format safetensors\n");
  const Result small = cli({"sample", "--size", "1K", "--tensors", "1000", path.c_str()});
  EXPECT_EQ(small.code, kExitUsage);
  EXPECT_EQ(small.err,
            "weightmap sample: 1000 tensors of f16 do not fit in 1024 bytes (within 1%); the "
            "smallest size that fits is 4749315 bytes (--size 4749315)\n");
  EXPECT_FALSE(fs::exists(path));
}

TEST(CliSample, UnwritableOutputExitsWith1) {
  TempDir dir;
  const std::string path = dir / "no/such/dir.safetensors";
  const Result result = cli({"sample", "--size", "1M", "--tensors", "10", path.c_str()});
  EXPECT_EQ(result.code, kExitError);
  EXPECT_EQ(result.err, "weightmap: " + path +
                            ": cannot create a file in its folder: No such file or directory\n");
}

TEST(CliSample, ParsesSizesWithBinarySuffixes) {
  EXPECT_EQ(parse_byte_size("4096"), 4096u);
  EXPECT_EQ(parse_byte_size("4096b"), 4096u);
  EXPECT_EQ(parse_byte_size("1K"), 1024u);
  EXPECT_EQ(parse_byte_size("1kib"), 1024u);
  EXPECT_EQ(parse_byte_size("1KB"), 1024u);
  EXPECT_EQ(parse_byte_size("256M"), 256u << 20);
  EXPECT_EQ(parse_byte_size("256MiB"), 256u << 20);
  EXPECT_EQ(parse_byte_size("2G"), std::uint64_t{2} << 30);
  EXPECT_EQ(parse_byte_size("1.5g"), std::uint64_t{3} << 29);
  EXPECT_EQ(parse_byte_size("1T"), std::uint64_t{1} << 40);
  for (const char* bad :
       {"", "G", "0", "0.1", "1.5", "12Q", "1GG", "-1", "1 G", "1e9", "1..2M", "99999999999T"}) {
    EXPECT_EQ(parse_byte_size(bad), std::nullopt) << bad;
  }
}

TEST(CliSample, HelpListsTheSampleCommand) {
  const Result result = cli({"--help"});
  EXPECT_EQ(result.code, kExitOk);
  EXPECT_NE(result.out.find("sample"), std::string::npos);
}

TEST(CliSample, HuggingFaceLayoutHasF32NormsAnI64PositionIdsAndTheWritersOrder) {
  TempDir dir;
  const std::string path = dir / "hf.safetensors";
  const Result r = cli({"sample", "--hugging-face", "--size", "4M", "--tensors", "100", path});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  const Model model = open_model(path);
  const auto& tensors = model.tensors();
  ASSERT_EQ(tensors.size(), 101u);
  EXPECT_EQ(tensors[0].name, "cond_stage_model.transformer.text_model.embeddings.position_ids");
  EXPECT_EQ(tensors[0].dtype, DType::I64);
  EXPECT_EQ(tensors[0].shape, (std::vector<std::uint64_t>{1, 77}));
  EXPECT_EQ(tensors[0].offset % 8, 0u);
  std::int64_t last_id = 0;
  const io::FileReader reader(path);
  reader.read_at(tensors[0].offset + 76 * 8, std::as_writable_bytes(std::span(&last_id, 1)));
  EXPECT_EQ(last_id, 76);  // position ids 0..76
  for (std::size_t i = 1; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    EXPECT_EQ(t.dtype, t.shape.size() == 1 ? DType::F32 : DType::F16) << t.name;
    const auto& before = tensors[i - 1];
    if (before.dtype == t.dtype) {
      EXPECT_LT(before.name, t.name);  // by name within a type
    }
  }
  EXPECT_EQ(cli({"sample", "--hugging-face", "--format", "gguf", dir / "x.gguf"}).code, kExitUsage);
}

}  // namespace
}  // namespace weightmap::cli
