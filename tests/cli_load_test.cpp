// `weightmap load`: the same checksum mapped and copied, the JSON report's keys and values,
// conversion of every tensor, warnings that do not fail, and exit codes.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cli/cli.hpp"
#include "cli/load_command.hpp"
#include "cli/tensor_checksum.hpp"
#include "support/cli_run.hpp"
#include "support/json_dom.hpp"
#include "support/sample_file.hpp"
#include "support/temp_dir.hpp"
#include "testbed/process_memory.hpp"
#include "weightmap/model.hpp"

namespace weightmap::cli {
namespace {

namespace fs = std::filesystem;

using Result = test::CliResult;

Result cli(const std::vector<std::string>& args) { return test::run_cli_captured(args); }

using testbed::proc_kib_field;
using testbed::ProcessMemory;
using testbed::read_process_memory;
using testing::TempDir;

// A small f16 sample model in the test's own folder.
std::string sample_model(const TempDir& dir, FileFormat format) {
  return test::write_sample(
      dir / (format == FileFormat::gguf ? "cli_load.gguf" : "cli_load.safetensors"),
      {.format = format, .bytes = std::uint64_t{2} << 20, .tensors = 40});
}

TEST(CliLoad, MmapAndCopyGiveTheSameChecksum) {
  const TempDir dir;
  for (const FileFormat format : {FileFormat::safetensors, FileFormat::gguf}) {
    const std::string path = sample_model(dir, format);
    const Result mapped = cli({"load", path.c_str(), "--json"});
    const Result copied = cli({"load", path.c_str(), "--json", "--no-mmap"});
    const Result direct = cli({"load", path.c_str(), "--json", "--no-mmap", "--direct-io"});
    const Result writable = cli({"load", path.c_str(), "--json", "--writable", "--threads", "1"});
    ASSERT_EQ(mapped.code, kExitOk) << mapped.err;
    ASSERT_EQ(copied.code, kExitOk) << copied.err;
    ASSERT_EQ(direct.code, kExitOk) << direct.err;
    ASSERT_EQ(writable.code, kExitOk) << writable.err;
    const std::string checksum = test::json_text(*test::parse_json(mapped.out), "checksum");
    EXPECT_EQ(checksum.size(), 16u);
    EXPECT_EQ(test::json_text(*test::parse_json(copied.out), "checksum"), checksum);
    EXPECT_EQ(test::json_text(*test::parse_json(direct.out), "checksum"), checksum);
    EXPECT_EQ(test::json_text(*test::parse_json(writable.out), "checksum"), checksum);
  }
}

TEST(CliLoad, JsonHasTheReportedFiguresMapped) {
  const TempDir dir;
  const std::string path = sample_model(dir, FileFormat::safetensors);
  const Model model = open_model(path);
  std::uint64_t bytes = 0;
  for (const auto& t : model.tensors()) bytes += t.nbytes;

  const Result r = cli({"load", path.c_str(), "--json"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  const auto json = test::parse_json(r.out);
  EXPECT_EQ(test::json_u64(*json, "mapped_tensors"), model.tensors().size());
  EXPECT_EQ(test::json_u64(*json, "mapped_bytes"), bytes);
  EXPECT_EQ(test::json_u64(*json, "loaded_tensors"), 0u);
  EXPECT_EQ(test::json_u64(*json, "loaded_bytes"), 0u);
  EXPECT_EQ(test::json_u64(*json, "converted_tensors"), 0u);
  double seconds = -1;
  EXPECT_EQ(json->root["seconds"].get(seconds), simdjson::SUCCESS);
  EXPECT_GE(seconds, 0.0);
  EXPECT_LT(seconds, 60.0);
  // Mapped pages are file-backed: touching them all must not show up as anonymous memory,
  // and RssFile covers at least the part of the model that is still resident.
  EXPECT_GT(test::json_u64(*json, "rss_anon_bytes"), 0u);
  EXPECT_GT(test::json_u64(*json, "rss_file_bytes"), 0u);
  EXPECT_GT(test::json_u64(*json, "pss_bytes"), 0u);
  // Every page was touched, so all of it is resident (mincore counts whole pages, which can
  // come to a little more than the tensor bytes).
  EXPECT_GE(test::json_u64(*json, "page_cache_resident_after_bytes"),
            test::json_u64(*json, "page_cache_tensor_bytes"));
}

TEST(CliLoad, JsonCountsLoadedTensorsWithoutMmap) {
  const TempDir dir;
  const std::string path = sample_model(dir, FileFormat::gguf);
  const Model model = open_model(path);
  std::uint64_t bytes = 0;
  for (const auto& t : model.tensors()) bytes += t.nbytes;

  const Result r = cli({"load", path.c_str(), "--json", "--no-mmap", "--threads", "3"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  const auto json = test::parse_json(r.out);
  EXPECT_EQ(test::json_u64(*json, "mapped_tensors"), 0u);
  EXPECT_EQ(test::json_u64(*json, "loaded_tensors"), model.tensors().size());
  EXPECT_EQ(test::json_u64(*json, "loaded_bytes"), bytes);
  EXPECT_EQ(test::json_u64(*json, "converted_tensors"), 0u);
  // The loaded bytes live in anonymous memory.
  EXPECT_GE(test::json_u64(*json, "rss_anon_bytes"), bytes);
}

TEST(CliLoad, DtypeF32ConvertsEveryTensorOfAnF16Model) {
  const TempDir dir;
  const std::string path = sample_model(dir, FileFormat::safetensors);
  const Model model = open_model(path);
  const Result r = cli({"load", path.c_str(), "--json", "--dtype", "f32"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  const auto json = test::parse_json(r.out);
  EXPECT_EQ(test::json_u64(*json, "converted_tensors"), model.tensors().size());
  EXPECT_EQ(test::json_u64(*json, "loaded_tensors"), model.tensors().size());
  EXPECT_EQ(test::json_u64(*json, "unconverted_tensors"), 0u);
  std::uint64_t bytes = 0;
  for (const auto& t : model.tensors()) bytes += t.nbytes;
  EXPECT_EQ(test::json_u64(*json, "loaded_bytes"), 2 * bytes);
}

TEST(CliLoad, UnconvertibleDtypeIsOneWarningNotAFailure) {
  const TempDir dir;
  const std::string path = test::write_sample(
      dir / "cli_load_q8.gguf", {.format = FileFormat::gguf, .tensors = 5, .dtype = DType::Q8_0});
  const Model model = open_model(path);

  const Result r = cli({"load", path.c_str(), "--json", "--dtype", "f32"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  const auto json = test::parse_json(r.out);
  EXPECT_EQ(test::json_u64(*json, "unconverted_tensors"), model.tensors().size());
  EXPECT_EQ(test::json_u64(*json, "converted_tensors"), 0u);
  EXPECT_EQ(test::json_u64(*json, "mapped_tensors"), model.tensors().size());
  const std::string first = model.tensors().front().name;
  // One line for all of them; the names are in the JSON.
  EXPECT_EQ(r.err,
            "weightmap load: warning: 5 tensors cannot be converted from q8_0 to f32, "
            "loaded as q8_0 (first: " +
                first + "; all in --json)\n");
  simdjson::dom::array listed;
  ASSERT_EQ(json->root["unconverted"].get(listed), simdjson::SUCCESS) << r.out;
  ASSERT_EQ(listed.size(), model.tensors().size());
  std::string_view tensor, dtype, requested;
  ASSERT_EQ(listed.at(0)["tensor"].get(tensor), simdjson::SUCCESS);
  ASSERT_EQ(listed.at(0)["dtype"].get(dtype), simdjson::SUCCESS);
  ASSERT_EQ(listed.at(0)["requested"].get(requested), simdjson::SUCCESS);
  EXPECT_EQ(tensor, first);
  EXPECT_EQ(dtype, "q8_0");
  EXPECT_EQ(requested, "f32");
}

TEST(CliLoad, UnknownFlagsWordIsAWarning) {
  const TempDir dir;
  const std::string path = sample_model(dir, FileFormat::safetensors);
  const Result r = cli({"load", path.c_str(), "--flags", "populate,bogus"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.err,
            "weightmap load: warning: --flags: unknown word \"bogus\" ignored (known: sequential, "
            "willneed, populate, dontneed, hugepage, random, mlock)\n");
  EXPECT_NE(r.out.find("page-cache flags: populate"), std::string::npos) << r.out;
}

TEST(CliLoad, TextReportNamesEveryFigure) {
  const TempDir dir;
  const std::string path = sample_model(dir, FileFormat::safetensors);
  const Result r = cli({"load", path.c_str()});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_TRUE(r.out.starts_with("memory-mapped 40 tensors in 1 files")) << r.out;
  for (const char* part : {"checksum ", "anonymous", "file-backed", "PSS", "page cache: "}) {
    EXPECT_NE(r.out.find(part), std::string::npos) << part << "\n" << r.out;
  }
}

TEST(CliLoad, UsageErrorsExitTwo) {
  const TempDir dir;
  const std::string path = sample_model(dir, FileFormat::safetensors);
  EXPECT_EQ(cli({"load"}).code, kExitUsage);
  EXPECT_EQ(cli({"load", path.c_str(), "--dtype", "f33"}).code, kExitUsage);
  EXPECT_EQ(cli({"load", path.c_str(), "--threads", "0"}).code, kExitUsage);
  EXPECT_EQ(cli({"load", path.c_str(), "--alignment", "3"}).code, kExitUsage);
  EXPECT_EQ(cli({"load", path.c_str(), "--no-such-option"}).code, kExitUsage);
  EXPECT_EQ(cli({"load", path.c_str(), "--mode", "fast"}).code, kExitUsage);
  EXPECT_EQ(cli({"load", path.c_str(), "--mode", "mmap", "--no-mmap"}).code, kExitUsage);
  EXPECT_EQ(cli({"load", path.c_str(), "--mode", "mmap", "--direct-io"}).code, kExitUsage);
}

TEST(CliLoad, AutoIsTheDefaultModeAndSaysWhatItChosePerFile) {
  const TempDir dir;
  const std::string path = sample_model(dir, FileFormat::safetensors);
  const Result r = cli({"load", path.c_str(), "--json"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(test::json_text(*test::parse_json(r.out), "mode"), "auto");
  for (const char* part : {"\"file_choices\": [{\"path\": ", "\"filesystem\": ",
                           "\"mapped_tensors\": 40, \"loaded_tensors\": 0, "
                           "\"resident_fraction\": null, \"read_with\": \"\", \"why\": \"40 "
                           "mapped tensors: "}) {
    EXPECT_NE(r.out.find(part), std::string::npos) << part << "\n" << r.out;
  }
  const Result fixed = cli({"load", path.c_str(), "--mode", "read"});
  ASSERT_EQ(fixed.code, kExitOk) << fixed.err;
  EXPECT_NE(fixed.out.find("\nmode: read\n"), std::string::npos) << fixed.out;
  EXPECT_NE(fixed.out.find(": 0 mapped, 40 loaded with pread; the read mode\n"), std::string::npos)
      << fixed.out;
}

TEST(CliLoad, OffloadLoadsEveryTensorAndKeepsTheChecksum) {
  const TempDir dir;
  const std::string path = sample_model(dir, FileFormat::gguf);
  const Result mapped = cli({"load", path.c_str(), "--json", "--mode", "mmap"});
  const Result offload = cli({"load", path.c_str(), "--json", "--offload"});
  ASSERT_EQ(mapped.code, kExitOk) << mapped.err;
  ASSERT_EQ(offload.code, kExitOk) << offload.err;
  const auto json = test::parse_json(offload.out);
  EXPECT_EQ(test::json_u64(*json, "mapped_tensors"), 0u);
  EXPECT_EQ(test::json_u64(*json, "loaded_tensors"), 40u);
  EXPECT_NE(offload.out.find("\"device_cannot_read_host_memory\": 40"), std::string::npos)
      << offload.out;
  EXPECT_EQ(test::json_text(*json, "checksum"),
            test::json_text(*test::parse_json(mapped.out), "checksum"));
}

TEST(CliLoad, MalformedFileExitsOneNamingIt) {
  const TempDir dir;
  const std::string path = dir / "cli_load_bad.safetensors";
  {
    std::ofstream file(path, std::ios::binary);
    file << "not a model at all, just some text";
  }
  const Result r = cli({"load", path.c_str()});
  EXPECT_EQ(r.code, kExitError);
  EXPECT_TRUE(r.err.starts_with("weightmap: " + path + ": ")) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST(CliLoad, ChecksumDependsOnEveryByteAndTheOrder) {
  std::vector<std::byte> bytes(1000, std::byte{7});
  const std::uint64_t base = hash_bytes(bytes);
  for (const std::size_t at :
       {std::size_t{0}, std::size_t{31}, std::size_t{32}, std::size_t{995}, std::size_t{999}}) {
    auto changed = bytes;
    changed[at] = std::byte{8};
    EXPECT_NE(hash_bytes(changed), base) << at;
  }
  EXPECT_NE(hash_bytes(std::span(bytes).first(999)), base);
  TensorChecksum ab;
  ab.add(std::span(bytes).first(10));
  ab.add(std::span(bytes).first(20));
  TensorChecksum ba;
  ba.add(std::span(bytes).first(20));
  ba.add(std::span(bytes).first(10));
  EXPECT_NE(ab.value(), ba.value());
}

TEST(ProcMemory, ReadsKibFieldsAsBytes) {
  const std::string status =
      "Name:\tweightmap\nVmRSS:\t  12345 kB\nRssAnon:\t    1024 kB\nRssFile:\t  2048 kB\n"
      "RssShmem:\t       0 kB\n";
  EXPECT_EQ(proc_kib_field(status, "RssAnon"), std::uint64_t{1024} * 1024);
  EXPECT_EQ(proc_kib_field(status, "RssFile"), std::uint64_t{2048} * 1024);
  EXPECT_EQ(proc_kib_field(status, "RssShmem"), 0u);
  EXPECT_EQ(proc_kib_field(status, "Rss"), std::nullopt);   // a prefix of a key is not the key
  EXPECT_EQ(proc_kib_field(status, "Name"), std::nullopt);  // not a number
  EXPECT_EQ(proc_kib_field(status, "Pss"), std::nullopt);
  EXPECT_EQ(proc_kib_field("Pss:  7 kB", "Pss"), std::uint64_t{7} * 1024);  // no final newline
  EXPECT_EQ(proc_kib_field("Pss: 99999999999999999999 kB\n", "Pss"), std::nullopt);
}

TEST(ProcMemory, ReadsThisProcess) {
  const ProcessMemory memory = read_process_memory();
  EXPECT_GT(memory.rss_anon_bytes + memory.rss_file_bytes, 0u);
  EXPECT_GT(memory.pss_bytes, 0u);
}

}  // namespace
}  // namespace weightmap::cli
