// `weightmap cache`: residency per file and per component, --evict leaves nothing resident,
// --prefetch leaves everything resident, the JSON fields, and exit codes.
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <simdjson.h>
#include <sys/vfs.h>

#include <string>
#include <vector>

#include "cli/cache_command.hpp"
#include "cli/cli.hpp"
#include "support/cli_run.hpp"
#include "support/json_dom.hpp"
#include "support/safetensors_bytes.hpp"
#include "support/temp_dir.hpp"

namespace weightmap::cli {
namespace {

using testing::SafetensorsBuilder;
using testing::TempDir;

// Two components in two files: a "unet" of 3 tensors (about 1.5 MiB, so some pages are
// shared by two tensors and the last one ends mid-page) and a text encoder.
class CacheCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    SafetensorsBuilder unet;
    unet.add("down.w", "F32", {1000, 129}).add("down.b", "F32", {7}).add("up.w", "F16", {300, 999});
    unet_ = dir_ / "unet.safetensors";
    testing::write_file(unet_, unet.bytes());
    unet_bytes_ = 1000 * 129 * 4 + 7 * 4 + 300 * 999 * 2;
    SafetensorsBuilder te;
    te.add("text_model.w", "F32", {256, 256});
    te_ = dir_ / "te.safetensors";
    testing::write_file(te_, te.bytes());
    te_bytes_ = 256 * 256 * 4;
  }

  // Files on tmpfs (or ramfs) live in the page cache and cannot be evicted.
  bool on_memory_filesystem() const {
    struct statfs fs {};
    if (::statfs(dir_.path().c_str(), &fs) != 0) return false;
    return fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC;
  }

  TempDir dir_;
  std::string unet_;
  std::string te_;
  std::uint64_t unet_bytes_ = 0;
  std::uint64_t te_bytes_ = 0;
};

using test::Json;
using test::json_text;
using test::json_u64;
using test::parse_json;

struct Entry {
  std::string name;
  std::uint64_t bytes = 0;
  std::uint64_t resident_bytes = 0;
};

std::vector<Entry> entries(const Json& json, const char* array, const char* name_key) {
  std::vector<Entry> out;
  simdjson::dom::array items;
  EXPECT_EQ(json.root[array].get(items), simdjson::SUCCESS) << array;
  for (simdjson::dom::element item : items) {
    Entry entry;
    std::string_view name;
    EXPECT_EQ(item[name_key].get(name), simdjson::SUCCESS) << name_key;
    entry.name = name;
    EXPECT_EQ(item["bytes"].get(entry.bytes), simdjson::SUCCESS);
    EXPECT_EQ(item["resident_bytes"].get(entry.resident_bytes), simdjson::SUCCESS);
    out.push_back(entry);
  }
  return out;
}

TEST_F(CacheCommand, JsonHasFilesAndComponentsWithTheirBytes) {
  const auto result = test::run_cli_captured(
      {"cache", "--json", "--prefix", "unet.", unet_, "--prefix", "te.", te_});
  ASSERT_EQ(result.code, kExitOk) << result.err;
  const auto json = parse_json(result.out);
  EXPECT_EQ(json_text(*json, "action"), "none");
  EXPECT_EQ(json_u64(*json, "bytes"), unet_bytes_ + te_bytes_);
  const auto files = entries(*json, "files", "path");
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0].name, unet_);
  EXPECT_EQ(files[0].bytes, unet_bytes_);
  EXPECT_EQ(files[1].name, te_);
  EXPECT_EQ(files[1].bytes, te_bytes_);
  const auto components = entries(*json, "components", "prefix");
  ASSERT_EQ(components.size(), 2u);
  EXPECT_EQ(components[0].name, "unet");
  EXPECT_EQ(components[0].bytes, unet_bytes_);
  EXPECT_EQ(components[1].name, "te");
  EXPECT_EQ(components[1].bytes, te_bytes_);
  for (const auto& entry : files) EXPECT_LE(entry.resident_bytes, entry.bytes);
}

TEST_F(CacheCommand, WithoutPrefixComponentsAreFirstDottedParts) {
  const auto result = test::run_cli_captured({"cache", "--json", unet_, te_});
  ASSERT_EQ(result.code, kExitOk) << result.err;
  const auto components = entries(*parse_json(result.out), "components", "prefix");
  ASSERT_EQ(components.size(), 3u);
  EXPECT_EQ(components[0].name, "down");
  EXPECT_EQ(components[0].bytes, 1000u * 129 * 4 + 7 * 4);
  EXPECT_EQ(components[1].name, "up");
  EXPECT_EQ(components[2].name, "text_model");
}

TEST_F(CacheCommand, EvictLeavesNothingResident) {
  if (on_memory_filesystem()) {
    GTEST_SKIP() << "the test folder is on tmpfs/ramfs, whose pages cannot be evicted";
  }
  const auto result = test::run_cli_captured({"cache", "--evict", "--json", unet_, te_});
  ASSERT_EQ(result.code, kExitOk) << result.err;
  const auto json = parse_json(result.out);
  EXPECT_EQ(json_u64(*json, "resident_bytes"), 0u);
  for (const auto& entry : entries(*json, "files", "path")) {
    EXPECT_EQ(entry.resident_bytes, 0u) << entry.name;
  }
  for (const auto& entry : entries(*json, "components", "prefix")) {
    EXPECT_EQ(entry.resident_bytes, 0u) << entry.name;
  }
}

TEST_F(CacheCommand, PrefetchAfterEvictLeavesEverythingResident) {
  // Evict first so the prefetch has something to do (on tmpfs it is all resident anyway and
  // the assertions hold as well).
  ASSERT_EQ(test::run_cli_captured({"cache", "--evict", unet_, te_}).code, kExitOk);
  const auto result = test::run_cli_captured({"cache", "--prefetch", "--json", unet_, te_});
  ASSERT_EQ(result.code, kExitOk) << result.err;
  EXPECT_EQ(result.err, "");  // no progress bar into a string stream
  const auto json = parse_json(result.out);
  EXPECT_EQ(json_u64(*json, "resident_bytes"), unet_bytes_ + te_bytes_);
  for (const auto& entry : entries(*json, "files", "path")) {
    EXPECT_EQ(entry.resident_bytes, entry.bytes) << entry.name;
  }
  for (const auto& entry : entries(*json, "components", "prefix")) {
    EXPECT_EQ(entry.resident_bytes, entry.bytes) << entry.name;
  }
}

TEST_F(CacheCommand, TextReportAfterPrefetch) {
  const auto result = test::run_cli_captured({"cache", "--prefetch", "--prefix", "te.", te_});
  ASSERT_EQ(result.code, kExitOk) << result.err;
  EXPECT_EQ(result.out, fmt::format("page cache: 256.0 KiB of 256.0 KiB of tensor data resident "
                                    "(100.0%)\n"
                                    "files:\n"
                                    "  100.0%  256.0 KiB of  256.0 KiB  {}\n"
                                    "components:\n"
                                    "  100.0%  256.0 KiB of  256.0 KiB  te\n",
                                    te_));
}

TEST_F(CacheCommand, ABadPathIsAnErrorExit) {
  const std::string missing = dir_ / "missing.safetensors";
  const auto result = test::run_cli_captured({"cache", missing});
  EXPECT_EQ(result.code, kExitError);
  EXPECT_EQ(result.out, "");
  EXPECT_TRUE(result.err.starts_with("weightmap: " + missing + ": ")) << result.err;
}

TEST_F(CacheCommand, PrefetchAndEvictTogetherAreAUsageError) {
  const auto result = test::run_cli_captured({"cache", "--prefetch", "--evict", te_});
  EXPECT_EQ(result.code, kExitUsage);
}

TEST(CacheComponentTest, LongestPrefixWinsAndLosesItsDot) {
  const std::vector<ModelSource> sources = {{"a", "vae."}, {"b", "vae.enc_"}, {"c", ""}};
  EXPECT_EQ(component_of("vae.decoder.w", sources), "vae");
  EXPECT_EQ(component_of("vae.enc_x.w", sources), "vae.enc_");
  EXPECT_EQ(component_of("model.layers.0.w", sources), "model");
  EXPECT_EQ(component_of("lonely", sources), "lonely");
}

}  // namespace
}  // namespace weightmap::cli
