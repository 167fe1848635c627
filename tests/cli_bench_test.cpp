// `weightmap bench`: every mode row and every floor, with --runs 1 on a tiny model.
#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "support/temp_dir.hpp"
#include "weightmap/bench_command.hpp"
#include "weightmap/cli.hpp"
#include "weightmap/sample.hpp"

namespace weightmap::cli {
namespace {

using testing::TempDir;

// A 1 MiB sample model of 20 tensors in the test's own folder.
std::string tiny_sample(const TempDir& dir, const std::string& name) {
  const std::string path = dir / name;
  SampleOptions sample;
  sample.path = path;
  sample.size = std::uint64_t{1} << 20;
  sample.tensors = 20;
  std::ostringstream ignored;
  EXPECT_EQ(run_sample(sample, ignored, ignored), kExitOk);
  return path;
}

TEST(CliBench, PrintsEveryModeAndFloorWithOneRun) {
  const TempDir dir;
  const std::string path = tiny_sample(dir, "cli_bench.safetensors");
  BenchOptions options;
  options.path = path;
  options.runs = 1;
  std::ostringstream out;
  std::ostringstream err;
  ASSERT_EQ(run_bench(options, out, err), kExitOk) << err.str();
  const std::string text = out.str();
  for (const char* row :
       {"\nindex-only open ", "\nread() into a new buffer ", "\nread() into a pre-faulted buffer ",
        "\nmemcpy (pre-faulted) ", "\nmmap ", "\nmmap + populate ", "\npread copy ",
        "\npread copy, caller's buffers ", "\nO_DIRECT copy ", "\nconvert to f32 ",
        "\nconvert to f32, caller's buffers ", "\nconvert to f32, hugepage buffers ",
        "x the time of index-only open", "x read() new, ", "environment: convert ",
        "1 runs (medians)"}) {
    EXPECT_NE(text.find(row), std::string::npos) << row << "\n" << text;
  }
  EXPECT_EQ(err.str(), "");  // no progress bar when not asked (stderr is not a terminal)
}

TEST(CliBench, BoundsTheCopiedBytes) {
  const TempDir dir;
  const std::string path = tiny_sample(dir, "cli_bench_bound.safetensors");
  BenchOptions options;
  options.path = path;
  options.runs = 1;
  options.bytes_per_run = 1;  // at least one tensor is still copied
  std::ostringstream out;
  std::ostringstream err;
  ASSERT_EQ(run_bench(options, out, err), kExitOk) << err.str();
  EXPECT_NE(out.str().find("use the first 1 tensors in file order"), std::string::npos)
      << out.str();
}

TEST(CliBench, ExitCodes) {
  std::ostringstream out;
  std::ostringstream err;
  const char* no_path[] = {"weightmap", "bench"};
  EXPECT_EQ(run_cli(2, no_path, out, err), kExitUsage);
  const char* zero_runs[] = {"weightmap", "bench", "x.safetensors", "--runs", "0"};
  EXPECT_EQ(run_cli(5, zero_runs, out, err), kExitUsage);

  const TempDir dir;
  BenchOptions options;
  options.path = dir / "cli_bench_missing.safetensors";
  options.runs = 1;
  std::ostringstream bench_err;
  EXPECT_EQ(run_bench(options, out, bench_err), kExitError);
  EXPECT_TRUE(bench_err.str().starts_with("weightmap: " + options.path + ": ")) << bench_err.str();
}

}  // namespace
}  // namespace weightmap::cli
