// The pieces of `weightmap bench` that are not timings: the baseline loads the right bytes,
// the fill floor writes every byte, and each ratio compares a row with the right one.
#include "cli/bench_baseline.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cli/bench_fill.hpp"
#include "cli/bench_rows.hpp"
#include "support/sample_file.hpp"
#include "support/temp_dir.hpp"
#include "weightmap/convert.hpp"
#include "weightmap/error.hpp"
#include "weightmap/model.hpp"

namespace weightmap::cli {
namespace {

using testing::TempDir;

std::vector<std::byte> file_bytes(const std::string& path, std::uint64_t offset, std::uint64_t n) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(offset));
  std::vector<std::byte> bytes(static_cast<std::size_t>(n));
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(n));
  EXPECT_TRUE(in.good()) << path;
  return bytes;
}

class BenchBaseline : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = test::write_sample(dir_ / "baseline.safetensors", {.tensors = 12});
  }

  std::vector<BaselineTensor> tensors(const Model& model, bool to_f32) const {
    std::vector<BaselineTensor> out;
    for (const TensorInfo& t : model.tensors()) {
      out.push_back(
          {t.offset, t.nbytes, t.dtype, to_f32 ? DType::F32 : t.dtype, t.element_count()});
    }
    return out;
  }

  TempDir dir_;
  std::string path_;
};

TEST_F(BenchBaseline, CopiesEveryTensorsBytesWithAnyThreadCount) {
  const Model model = open_model(path_);
  const auto list = tensors(model, false);
  for (unsigned threads : {1u, 2u, 5u, 40u}) {  // 40: more threads than tensors
    const BaselineBuffers loaded = baseline_load(path_, list, threads);
    ASSERT_EQ(loaded.buffers.size(), list.size());
    for (std::size_t i = 0; i < list.size(); ++i) {
      const auto expected = file_bytes(path_, list[i].offset, list[i].nbytes);
      EXPECT_EQ(std::memcmp(loaded.buffers[i].get(), expected.data(), expected.size()), 0)
          << "tensor " << i << ", " << threads << " threads";
    }
  }
}

TEST_F(BenchBaseline, ConvertsFromTheStagingBuffer) {
  const Model model = open_model(path_);
  const auto list = tensors(model, true);
  ASSERT_EQ(list.front().stored, DType::F16);
  const BaselineBuffers loaded = baseline_load(path_, list, 2);
  for (std::size_t i = 0; i < list.size(); ++i) {
    const auto stored = file_bytes(path_, list[i].offset, list[i].nbytes);
    std::vector<std::byte> expected(static_cast<std::size_t>(list[i].elements * 4));
    convert(list[i].stored, stored, DType::F32, expected, list[i].elements);
    EXPECT_EQ(std::memcmp(loaded.buffers[i].get(), expected.data(), expected.size()), 0)
        << "tensor " << i;
  }
}

TEST_F(BenchBaseline, AReadPastTheEndNamesTheFileAndByte) {
  const Model model = open_model(path_);
  auto list = tensors(model, false);
  const std::uint64_t size = model.files()[0].size;
  list.push_back({size - 8, 64, DType::U8, DType::U8, 64});
  try {
    (void)baseline_load(path_, list, 2);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::io);
    EXPECT_EQ(e.file(), path_);
    EXPECT_EQ(e.offset(), size);
    EXPECT_NE(std::string(e.what()).find("file ended early"), std::string::npos) << e.what();
  }
}

TEST(BenchFill, WritesEveryByteWithAndWithoutHugePages) {
  for (bool huge : {false, true}) {
    for (std::size_t bytes : {std::size_t{1}, std::size_t{4097}, std::size_t{3} << 20}) {
      const FilledBuffer buffer = fill_fresh_buffer(bytes, 3, huge);
      std::size_t wrong = 0;
      for (std::size_t i = 0; i < bytes; ++i) wrong += buffer.get()[i] != std::byte{0x5a};
      EXPECT_EQ(wrong, 0u) << bytes << " bytes, huge pages " << huge;
    }
  }
}

TEST(BenchFill, ReadsTheTransparentHugePageMode) {
  const std::string mode = transparent_huge_pages_mode();
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
  if (!in) {
    EXPECT_EQ(mode, "");
    return;
  }
  EXPECT_TRUE(mode == "always" || mode == "madvise" || mode == "never") << mode;
}

BenchRow row(std::string name, RowKind kind, std::vector<double> seconds, bool cold = false) {
  BenchRow r;
  r.name = std::move(name);
  r.kind = kind;
  r.cold = cold;
  r.seconds = std::move(seconds);
  return r;
}

TEST(BenchRows, RatiosCompareEachRowWithItsKindTemperatureAndPageSize) {
  std::vector<BenchRow> rows = {
      row("open", RowKind::open, {0.001}),
      row("read", RowKind::read, {2.0, 1.0, 3.0}),  // median 2
      row("read cold", RowKind::read, {4.0}, true),
      row("prefaulted", RowKind::read_prefaulted, {0.5}),
      row("memcpy", RowKind::memcpy, {0.25}),
      row("fill", RowKind::fill, {1.0}),
      row("fill huge", RowKind::fill, {0.5}),
      row("mmap", RowKind::mapped, {0.002}),
      row("copy", RowKind::copy, {1.0}),
      row("baseline copy", RowKind::copy, {4.0}),
      row("copy cold", RowKind::copy, {2.0}, true),
      row("baseline copy cold", RowKind::copy, {8.0}, true),
      row("convert", RowKind::convert, {3.0}),
      row("convert huge", RowKind::convert, {3.0}),
      row("convert into", RowKind::convert, {1.5}),
      row("baseline convert", RowKind::convert, {6.0}),
  };
  rows[6].huge_pages = true;
  rows[9].baseline = true;
  rows[11].baseline = true;
  rows[13].huge_pages = true;
  rows[14].callers_buffers = true;
  rows[15].baseline = true;
  // Copies move 100 bytes of a 200-byte range: half the floor's bytes in the same time is 0.5x.
  const auto f = figures_of(rows, 100, 200);
  ASSERT_EQ(f.size(), rows.size());
  EXPECT_DOUBLE_EQ(f[1].seconds, 2.0);
  EXPECT_DOUBLE_EQ(*f[7].time_to_open, 2.0);
  EXPECT_FALSE(f[7].time_to_baseline);
  EXPECT_FALSE(f[1].time_to_baseline);  // floors have no ratios

  EXPECT_DOUBLE_EQ(*f[8].bandwidth_to_read_new, (100 / 1.0) / (200 / 2.0));
  EXPECT_DOUBLE_EQ(*f[8].bandwidth_to_read_prefaulted, (100 / 1.0) / (200 / 0.5));
  EXPECT_DOUBLE_EQ(*f[8].bandwidth_to_memcpy, (100 / 1.0) / (200 / 0.25));
  EXPECT_DOUBLE_EQ(*f[8].time_to_baseline, 0.25);
  EXPECT_FALSE(f[8].time_to_fill);
  EXPECT_DOUBLE_EQ(*f[9].time_to_baseline, 1.0);

  // Cold rows: the cold read() floor and the cold baseline; no warm-only floors.
  EXPECT_DOUBLE_EQ(*f[10].bandwidth_to_read_new, (100 / 2.0) / (200 / 4.0));
  EXPECT_FALSE(f[10].bandwidth_to_read_prefaulted);
  EXPECT_FALSE(f[10].bandwidth_to_memcpy);
  EXPECT_DOUBLE_EQ(*f[10].time_to_baseline, 0.25);

  EXPECT_DOUBLE_EQ(*f[12].time_to_baseline, 0.5);
  EXPECT_DOUBLE_EQ(*f[12].time_to_fill, 3.0);  // against the 4 KiB fill
  EXPECT_DOUBLE_EQ(*f[13].time_to_fill, 6.0);  // against the huge-page fill
  EXPECT_FALSE(f[14].time_to_fill);            // the caller's buffers fault nothing
  EXPECT_DOUBLE_EQ(*f[14].time_to_baseline, 0.25);
  EXPECT_DOUBLE_EQ(*f[15].time_to_fill, 6.0);
}

TEST(BenchRows, NoBaselineRowMeansNoBaselineRatio) {
  std::vector<BenchRow> rows = {row("read", RowKind::read, {1.0}),
                                row("copy", RowKind::copy, {1.0}),
                                row("copy cold", RowKind::copy, {1.0}, true)};
  const auto f = figures_of(rows, 10, 10);
  EXPECT_FALSE(f[1].time_to_baseline);
  EXPECT_FALSE(f[2].bandwidth_to_read_new);  // no cold read() floor ran
  EXPECT_DOUBLE_EQ(*f[1].bandwidth_to_read_new, 1.0);
}

}  // namespace
}  // namespace weightmap::cli
