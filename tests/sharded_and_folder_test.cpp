// Opening sharded safetensors models (through model.safetensors.index.json or their folder),
// folders of several model files, and several sources with name prefixes.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "format/readers.hpp"
#include "support/error_text.hpp"
#include "support/safetensors_bytes.hpp"
#include "support/temp_dir.hpp"
#include "weightmap/error.hpp"
#include "weightmap/model.hpp"

namespace weightmap {
namespace {

using testing::error_text;
using testing::SafetensorsBuilder;
using testing::TempDir;

const std::vector<std::string> kShards = {"model-00001-of-00003.safetensors",
                                          "model-00002-of-00003.safetensors",
                                          "model-00003-of-00003.safetensors"};

// tensor -> shard, as the index lists it (not in shard order, as real indexes are sorted by
// tensor name).
using WeightMap = std::vector<std::pair<std::string, std::string>>;

std::string index_json(const WeightMap& weight_map, std::string_view metadata) {
  std::string entries;
  for (const auto& [tensor, shard] : weight_map) {
    if (!entries.empty()) entries += ",\n    ";
    entries += testing::json_quote(tensor) + ": " + testing::json_quote(shard);
  }
  return fmt::format("{{\n  \"metadata\": {},\n  \"weight_map\": {{\n    {}\n  }}\n}}\n", metadata,
                     entries);
}

// Three shards with two tensors each, plus their index.
class ShardedModel : public ::testing::Test {
 protected:
  void SetUp() override {
    for (std::size_t s = 0; s < kShards.size(); ++s) {
      SafetensorsBuilder shard;
      shard.metadata = {{"format", "pt"}};
      for (int t = 0; t < 2; ++t) {
        const std::string name = fmt::format("layers.{}.w{}", s, t);
        shard.add(name, "F16", {4, 2});
        weight_map.emplace_back(name, kShards[s]);
      }
      write_shard(s, shard);
    }
    std::sort(weight_map.begin(), weight_map.end());
    write_index(weight_map);
  }

  void write_shard(std::size_t s, const SafetensorsBuilder& shard) const {
    testing::write_file(dir / kShards[s], shard.bytes());
  }
  void write_index(const WeightMap& map) const {
    testing::write_file(index_path(), index_json(map, R"({"total_size": 96, "note": "x"})"));
  }
  std::string index_path() const { return dir / "model.safetensors.index.json"; }
  std::string shard_path(std::size_t s) const { return dir / kShards[s]; }

  void expect_three_shards(const Model& model) const {
    ASSERT_EQ(model.files().size(), 3u);  // each shard opened once
    for (std::size_t s = 0; s < kShards.size(); ++s) {
      EXPECT_EQ(model.files()[s].path, shard_path(s));
      EXPECT_EQ(model.files()[s].format, FileFormat::safetensors);
    }
    ASSERT_EQ(model.tensors().size(), 6u);
    for (const auto& [name, shard] : weight_map) {
      const TensorInfo* tensor = model.find(name);
      ASSERT_NE(tensor, nullptr) << name;
      ASSERT_LT(tensor->file, model.files().size());
      EXPECT_EQ(model.files()[tensor->file].path, (dir / shard)) << name;
      EXPECT_EQ(tensor->nbytes, 16u);
    }
    // File order: shard by shard, each in data order.
    for (std::size_t i = 0; i < model.tensors().size(); ++i) {
      EXPECT_EQ(model.tensors()[i].file, i / 2);
    }
    const MetadataEntry* total = model.find_metadata("total_size");
    ASSERT_NE(total, nullptr);
    EXPECT_EQ(std::get<std::string>(total->value.value), "96");
  }

  TempDir dir;
  WeightMap weight_map;
};

TEST_F(ShardedModel, OpensThroughTheIndex) { expect_three_shards(open_model(index_path())); }

TEST_F(ShardedModel, OpensThroughTheFolder) { expect_three_shards(open_model(dir.path())); }

TEST_F(ShardedModel, IndexMetadataKeepsNumbersAsDecimalText) {
  const Model model = open_model(index_path());
  const MetadataEntry* note = model.find_metadata("note");
  ASSERT_NE(note, nullptr);
  EXPECT_EQ(std::get<std::string>(note->value.value), "x");
  EXPECT_EQ(note->file, 0u);
}

TEST_F(ShardedModel, TensorTheIndexNamesButItsShardLacks) {
  WeightMap map = weight_map;
  map.emplace_back("layers.9.missing", kShards[1]);
  write_index(map);
  try {
    open_model(index_path());
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::not_found);
    EXPECT_EQ(std::string(error.what()),
              index_path() +
                  ": the index names this tensor but its shard model-00002-of-00003.safetensors "
                  "lacks it (tensor layers.9.missing)");
  }
}

TEST_F(ShardedModel, TensorInTwoShards) {
  // Shard 3 also holds layers.0.w0, which the index places in shard 1.
  SafetensorsBuilder shard;
  shard.add("layers.2.w0", "F16", {4, 2}).add("layers.2.w1", "F16", {4, 2});
  shard.add("layers.0.w0", "F16", {4, 2});
  write_shard(2, shard);
  try {
    open_model(index_path());
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::duplicate);
    const std::string what = error.what();
    EXPECT_EQ(what.rfind(shard_path(2) + ": tensor is in two shards (also in " + shard_path(0) +
                             ") (tensor layers.0.w0, byte ",
                         0),
              0u)
        << what;
  }
}

TEST_F(ShardedModel, TensorInTheWrongShard) {
  WeightMap map = weight_map;
  map[0].second = kShards[1];  // layers.0.w0 really is in shard 1
  write_index(map);
  const std::string what = error_text([&] { open_model(index_path()); });
  EXPECT_NE(what.find(shard_path(0) + ": the index " + index_path() + " places this tensor in " +
                      shard_path(1) + " (tensor layers.0.w0, byte "),
            std::string::npos)
      << what;
}

TEST_F(ShardedModel, TensorInAShardButNotInTheIndex) {
  WeightMap map = weight_map;
  map.erase(map.begin());  // layers.0.w0
  write_index(map);
  const std::string what = error_text([&] { open_model(index_path()); });
  EXPECT_NE(what.find(shard_path(0) + ": tensor is not listed in the index " + index_path() +
                      " (tensor layers.0.w0"),
            std::string::npos)
      << what;
}

TEST_F(ShardedModel, ShardPathEscapingTheFolder) {
  for (const std::string bad : {"../x.safetensors", "sub/../../x.safetensors", "/etc/passwd"}) {
    WeightMap map = weight_map;
    map.emplace_back("evil", bad);
    write_index(map);
    try {
      open_model(index_path());
      ADD_FAILURE() << bad;
    } catch (const Error& error) {
      EXPECT_EQ(error.code(), ErrorCode::malformed);
      EXPECT_EQ(std::string(error.what()),
                index_path() + ": shard name \"" + bad +
                    "\" points outside the index's folder (tensor evil)");
    }
  }
}

TEST_F(ShardedModel, MissingShardFile) {
  std::filesystem::remove(shard_path(1));
  try {
    open_model(index_path());
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::io);
    EXPECT_EQ(error.file(), shard_path(1));
  }
  // The folder route reads the same index and fails the same way.
  EXPECT_EQ(error_text([&] { open_model(dir.path()); }),
            error_text([&] { open_model(index_path()); }));
}

TEST_F(ShardedModel, PrefixAppliesToShardedNames) {
  const Model model = open_model(std::vector<ModelSource>{{index_path(), "unet."}});
  ASSERT_EQ(model.tensors().size(), 6u);
  EXPECT_NE(model.find("unet.layers.1.w0"), nullptr);
  EXPECT_EQ(model.find("layers.1.w0"), nullptr);
}

TEST_F(ShardedModel, FolderListsLooseFilesAndShardGroupsInSortedOrder) {
  testing::write_file(dir / "a_vae.safetensors",
                      SafetensorsBuilder().add("vae.w", "F32", {1}).bytes());
  testing::write_file(dir / "zz_te.safetensors",
                      SafetensorsBuilder().add("te.w", "F32", {1}).bytes());
  testing::write_file(dir / "notes.txt", std::string_view("not a model"));
  const Model model = open_model(dir.path());
  std::vector<std::string> paths;
  for (const auto& file : model.files()) paths.push_back(file.path);
  EXPECT_EQ(paths,
            (std::vector<std::string>{dir / "a_vae.safetensors", shard_path(0), shard_path(1),
                                      shard_path(2), dir / "zz_te.safetensors"}));
  EXPECT_EQ(model.tensors().size(), 8u);
  EXPECT_EQ(model.tensors().front().name, "vae.w");
  EXPECT_EQ(model.tensors().back().name, "te.w");
}

TEST(ModelFolder, SortedSafetensorsFiles) {
  TempDir dir;
  testing::write_file(dir / "b.safetensors", SafetensorsBuilder().add("b", "F32", {2}).bytes());
  testing::write_file(dir / "a.safetensors", SafetensorsBuilder().add("a", "F32", {2}).bytes());
  const Model model = open_model(dir.path());
  ASSERT_EQ(model.files().size(), 2u);
  EXPECT_EQ(model.files()[0].path, dir / "a.safetensors");
  EXPECT_EQ(model.files()[1].path, dir / "b.safetensors");
  EXPECT_EQ(model.find("b")->file, 1u);
}

TEST(ModelFolder, WithoutModelFilesIsAnError) {
  TempDir dir;
  testing::write_file(dir / "README.md", std::string_view("hello"));
  try {
    open_model(dir.path());
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::not_found);
    EXPECT_EQ(std::string(error.what()),
              dir.path().string() +
                  ": the folder holds no model files (*.safetensors, *.safetensors.index.json, "
                  "*.gguf, *.ckpt, *.pt, *.pth, *.bin)");
  }
}

TEST(ModelFolder, PytorchBinTwinsOfSafetensorsWeightsAreLeftOut) {
  TempDir dir;
  testing::write_file(dir / "model.safetensors", SafetensorsBuilder().add("w", "F32", {2}).bytes());
  // Not even a zip: reading it would fail, so the test shows it is never opened.
  testing::write_file(dir / "pytorch_model.bin", std::string_view("not a checkpoint"));
  const Model model = open_model(dir.path());
  ASSERT_EQ(model.files().size(), 1u);
  EXPECT_EQ(model.files()[0].path, dir / "model.safetensors");
}

TEST(ModelFolder, BinFilesAreReadWhenThereAreNoSafetensorsWeights) {
  TempDir dir;
  testing::write_file(dir / "pytorch_model.bin", std::string_view("not a checkpoint"));
  try {
    open_model(dir.path());
    FAIL() << "the .bin file was not read";
  } catch (const Error& error) {
    // Read, found to be no model, skipped: the folder's error says so.
    EXPECT_NE(std::string(error.what()).find(dir / "pytorch_model.bin" + ": skipped: "),
              std::string::npos)
        << error.what();
  }
}

TEST(ModelSources, PrefixesKeepComponentsApart) {
  TempDir dir;
  testing::write_file(
      dir / "te.safetensors",
      SafetensorsBuilder().add("weight", "F32", {2}).add("bias", "F32", {1}).bytes());
  testing::write_file(dir / "vae.safetensors",
                      SafetensorsBuilder().add("weight", "F16", {3}).bytes());
  const Model model = open_model(
      std::vector<ModelSource>{{dir / "te.safetensors", "te."}, {dir / "vae.safetensors", "vae."}});
  ASSERT_EQ(model.files().size(), 2u);
  ASSERT_EQ(model.tensors().size(), 3u);
  const TensorInfo* te = model.find("te.weight");
  const TensorInfo* vae = model.find("vae.weight");
  ASSERT_NE(te, nullptr);
  ASSERT_NE(vae, nullptr);
  EXPECT_EQ(te->file, 0u);
  EXPECT_EQ(vae->file, 1u);
  EXPECT_EQ(vae->dtype, DType::F16);
  EXPECT_EQ(model.find("weight"), nullptr);
  EXPECT_NE(model.find("te.bias"), nullptr);
}

TEST(ModelSources, SameNameInTwoSourcesWithoutPrefixesNamesBothFiles) {
  TempDir dir;
  const std::string first = dir / "one.safetensors";
  const std::string second = dir / "two.safetensors";
  testing::write_file(first, SafetensorsBuilder().add("weight", "F32", {2}).bytes());
  testing::write_file(second, SafetensorsBuilder().add("weight", "F32", {2}).bytes());
  try {
    open_model(std::vector<ModelSource>{{first, ""}, {second, ""}});
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::duplicate);
    EXPECT_EQ(std::string(error.what()), second + ": tensor name appears twice (first in " + first +
                                             ") (tensor weight, byte " +
                                             std::to_string(error.offset().value_or(0)) + ")");
  }
}

}  // namespace
}  // namespace weightmap

namespace weightmap {
namespace {

format::ShardIndex read_index(std::string_view text) {
  const auto bytes = testing::to_bytes(text);
  const io::MemoryByteSource source("model.safetensors.index.json", bytes);
  return format::read_safetensors_shard_index(source);
}

TEST(ShardIndex, WeightMapInOrderAndMetadataAsText) {
  const auto index = read_index(
      R"({"metadata":{"total_size":16106127360,"total_parameters":-3,"scale":1.5e3,"format":"pt"},)"
      R"("weight_map":{"b":"model-00002.safetensors","a":"model-00001.safetensors"},"other":[1]})");
  ASSERT_EQ(index.weight_map.size(), 2u);
  EXPECT_EQ(index.weight_map[0],
            (std::pair<std::string, std::string>{"b", "model-00002.safetensors"}));
  EXPECT_EQ(index.weight_map[1].first, "a");
  ASSERT_EQ(index.metadata.size(), 4u);
  EXPECT_EQ(index.metadata[0].first, "total_size");
  EXPECT_EQ(std::get<std::string>(index.metadata[0].second.value), "16106127360");
  EXPECT_EQ(std::get<std::string>(index.metadata[1].second.value), "-3");
  EXPECT_EQ(std::get<std::string>(index.metadata[2].second.value), "1.5e3");
  EXPECT_EQ(std::get<std::string>(index.metadata[3].second.value), "pt");
}

TEST(ShardIndex, MetadataIsOptional) {
  const auto index = read_index(R"({"weight_map":{}})");
  EXPECT_TRUE(index.weight_map.empty());
  EXPECT_TRUE(index.metadata.empty());
}

TEST(ShardIndex, BadIndexesNameTheFile) {
  struct Row {
    std::string_view json;
    ErrorCode code;
    std::string_view says;
  };
  const std::vector<Row> rows = {
      {"", ErrorCode::malformed, "the shard index is not valid JSON: empty: no JSON found"},
      {"[]", ErrorCode::malformed, "the shard index is not a JSON object"},
      {R"({"metadata":{}})", ErrorCode::malformed, "the shard index has no \"weight_map\""},
      {R"({"weight_map":[]})", ErrorCode::malformed, "\"weight_map\" is not an object"},
      {R"({"weight_map":{"a":1}})", ErrorCode::malformed,
       "the \"weight_map\" entry is not a shard file name (tensor a)"},
      {R"({"weight_map":{"a":"x","a":"y"}})", ErrorCode::duplicate,
       "the tensor is listed twice in \"weight_map\" (tensor a)"},
      {R"({"weight_map":{},"weight_map":{}})", ErrorCode::malformed,
       "\"weight_map\" appears twice"},
      {R"({"weight_map":{},"metadata":[]})", ErrorCode::malformed, "\"metadata\" is not an object"},
      {R"({"weight_map":{},"metadata":{"k":true}})", ErrorCode::malformed,
       "\"metadata\" value of \"k\" is neither a number nor a string"},
      {R"({"weight_map":{},"metadata":{"k":01}})", ErrorCode::malformed,
       "\"metadata\" value of \"k\" is not a valid number (found 01)"},
      {R"({"weight_map":{"a":"x"})", ErrorCode::malformed,
       "the shard index is not valid JSON: the JSON document has an improper structure: "
       "missing or superfluous commas, braces, missing keys, etc"},
      {R"({"weight_map":{}} {})", ErrorCode::malformed,
       "the shard index has more text after its JSON object"},
      {"{\"weight_map\":{\"\xff\":\"x\"}}", ErrorCode::malformed,
       "the shard index is not valid UTF-8"},
  };
  for (const auto& row : rows) {
    SCOPED_TRACE(row.json);
    try {
      read_index(row.json);
      ADD_FAILURE() << "accepted";
    } catch (const Error& error) {
      EXPECT_EQ(error.code(), row.code);
      EXPECT_EQ(std::string(error.what()),
                "model.safetensors.index.json: " + std::string(row.says));
    }
  }
}

}  // namespace
}  // namespace weightmap
