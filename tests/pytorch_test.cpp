// PyTorch checkpoints written at test time by torch.save itself (Debian's python3-torch):
// every tensor's name, dtype, shape and bytes must match the manifest torch wrote beside
// them. Contiguous tensors are read through a MappedFile at the offset the index gives;
// strided ones are gathered through their strides from the same mapping.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cli/inspect.hpp"
#include "support/shell_command.hpp"
#include "support/temp_dir.hpp"
#include "weightmap/error.hpp"
#include "weightmap/mapped_file.hpp"
#include "weightmap/model.hpp"

namespace weightmap {
namespace {

namespace fs = std::filesystem;

using test::run_command;
using test::shell_quote;

struct ManifestTensor {
  std::string name;
  std::string dtype;
  std::vector<std::uint64_t> shape;
  bool contiguous = true;
  std::string sha256;
};

class PytorchCheckpointTest : public ::testing::Test {
 protected:
  // torch takes seconds to import: one python run writes every fixture of the suite.
  static void SetUpTestSuite() {
    temp_ = std::make_unique<testing::TempDir>("weightmap-pytorch");
    dir_ = temp_->path();
    const std::string script =
        (fs::path(WEIGHTMAP_TEST_SCRIPTS_DIR) / "torch_write_fixtures.py").string();
    if (!run_command(fmt::format("{} {} {}", shell_quote(WEIGHTMAP_TEST_PYTHON),
                                 shell_quote(script), shell_quote(dir_.string())),
                     setup_failure_)) {
      return;
    }
    std::ifstream in(dir_ / "manifest.json");
    std::stringstream text;
    text << in.rdbuf();
    manifest_json_ = text.str();
  }
  static void TearDownTestSuite() {
    temp_.reset();
    dir_.clear();
  }
  void SetUp() override { ASSERT_EQ(setup_failure_, "") << setup_failure_; }

  static std::vector<ManifestTensor> manifest(const std::string& file) {
    simdjson::dom::parser parser;
    simdjson::dom::element root;
    EXPECT_EQ(parser.parse(manifest_json_).get(root), simdjson::SUCCESS);
    std::vector<ManifestTensor> rows;
    for (simdjson::dom::element row : simdjson::dom::array(root[file])) {
      ManifestTensor tensor;
      tensor.name = std::string(std::string_view(row["name"]));
      tensor.dtype = std::string(std::string_view(row["dtype"]));
      for (simdjson::dom::element dim : simdjson::dom::array(row["shape"])) {
        tensor.shape.push_back(std::uint64_t(dim));
      }
      tensor.contiguous = bool(row["contiguous"]);
      tensor.sha256 = std::string(std::string_view(row["sha256"]));
      rows.push_back(std::move(tensor));
    }
    return rows;
  }

  // The tensor's bytes in row-major order, straight from the mapping.
  static std::string tensor_bytes(const MappedFile& file, const TensorInfo& tensor) {
    if (tensor.strides.empty()) {
      const auto span = file.span(tensor.offset, tensor.nbytes);
      return {reinterpret_cast<const char*>(span.data()), span.size()};
    }
    const std::uint64_t element =
        tensor.element_count() == 0 ? 0 : tensor.nbytes / tensor.element_count();
    std::string out;
    std::vector<std::uint64_t> index(tensor.shape.size(), 0);
    for (std::uint64_t n = 0; n < tensor.element_count(); ++n) {
      std::uint64_t at = 0;
      for (std::size_t d = 0; d < index.size(); ++d) at += index[d] * tensor.strides[d];
      const auto span = file.span(tensor.offset + at * element, element);
      out.append(reinterpret_cast<const char*>(span.data()), span.size());
      for (std::size_t d = index.size(); d-- > 0;) {
        if (++index[d] < tensor.shape[d]) break;
        index[d] = 0;
      }
    }
    return out;
  }

  // sha256 of each tensor's bytes, by one sha256sum run over files named by position.
  static std::vector<std::string> sha256_of_tensors(const Model& model) {
    const auto file = MappedFile::open(model.files().at(0).path, Access::read_only);
    const fs::path bytes_dir = dir_ / "bytes";
    fs::remove_all(bytes_dir);
    fs::create_directories(bytes_dir);
    const auto& tensors = model.tensors();
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      std::ofstream out(bytes_dir / fmt::format("{:06}", i), std::ios::binary);
      const std::string bytes = tensor_bytes(*file, tensors[i]);
      out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    }
    std::string failure;
    const auto output = run_command(
        fmt::format("cd {} && sha256sum -- *", shell_quote(bytes_dir.string())), failure);
    EXPECT_TRUE(output) << failure;
    std::vector<std::string> sums;
    std::istringstream lines(output.value_or(""));
    std::string sum, name;
    while (lines >> sum >> name) sums.push_back(sum);
    return sums;
  }

  // Everything torch said about the file's tensors, in torch's order, and nothing more.
  static void expect_matches_manifest(const std::string& file) {
    const Model model = open_model((dir_ / file).string());
    ASSERT_EQ(model.files().at(0).format, FileFormat::pytorch_zip);
    const auto expected = manifest(file);
    const auto& tensors = model.tensors();
    ASSERT_EQ(tensors.size(), expected.size());
    const auto sums = sha256_of_tensors(model);
    ASSERT_EQ(sums.size(), tensors.size());
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      SCOPED_TRACE(expected[i].name);
      EXPECT_EQ(tensors[i].name, expected[i].name);
      EXPECT_EQ(dtype_name(tensors[i].dtype), expected[i].dtype);
      EXPECT_EQ(tensors[i].shape, expected[i].shape);
      EXPECT_EQ(tensors[i].strides.empty(), expected[i].contiguous);
      EXPECT_EQ(sums[i], expected[i].sha256);
    }
  }

  static const MetadataEntry& globals(const Model& model) {
    const MetadataEntry* entry = model.find_metadata("pytorch.globals");
    EXPECT_NE(entry, nullptr);
    return *entry;
  }

  static std::vector<std::string> global_names(const Model& model) {
    std::vector<std::string> names;
    for (const auto& value : std::get<MetadataArray>(globals(model).value.value)) {
      names.push_back(std::get<std::string>(value.value));
    }
    return names;
  }

  static inline std::unique_ptr<testing::TempDir> temp_;
  static inline fs::path dir_;
  static inline std::string setup_failure_;
  static inline std::string manifest_json_;
};

TEST_F(PytorchCheckpointTest, Resnet18MapsEveryTensorAndTheBytesMatchTorch) {
  expect_matches_manifest("resnet18.pt");
  const Model model = open_model((dir_ / "resnet18.pt").string());
  for (const auto& tensor : model.tensors()) {
    EXPECT_TRUE(tensor.strides.empty()) << tensor.name;  // a state dict maps entirely
  }
}

TEST_F(PytorchCheckpointTest, MobilenetConvBatchNormLinearMatchesTorch) {
  expect_matches_manifest("mobilenet_v3_small.pth");
}

TEST_F(PytorchCheckpointTest, EveryStorageDtypeViewAndStridedTensorMatchesTorch) {
  expect_matches_manifest("dtypes.pt");
  const Model model = open_model((dir_ / "dtypes.pt").string());
  const TensorInfo* base = model.find("base");
  const TensorInfo* rows = model.find("rows");
  const TensorInfo* transposed = model.find("transposed");
  const TensorInfo* expanded = model.find("expanded");
  ASSERT_TRUE(base && rows && transposed && expanded);
  // Views of one storage: a slice maps at its storage offset, a transpose is strided.
  EXPECT_EQ(rows->offset, base->offset + 6 * 4);
  EXPECT_EQ(transposed->offset, base->offset);
  EXPECT_EQ(transposed->strides, (std::vector<std::uint64_t>{1, 6}));
  EXPECT_EQ(expanded->strides, (std::vector<std::uint64_t>{0, 1}));
  EXPECT_EQ(expanded->nbytes, 3u * 6u * 4u);
}

TEST_F(PytorchCheckpointTest, NestedStateDictIsFlattenedBesideAnObjectOfAnUnknownClass) {
  expect_matches_manifest("nested.ckpt");
  const Model model = open_model((dir_ / "nested.ckpt").string());
  EXPECT_NE(model.find("state_dict.0.weight"), nullptr);
  const auto names = global_names(model);
  EXPECT_NE(std::find(names.begin(), names.end(), "__main__.TrainingCallback"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "torch._utils._rebuild_tensor_v2"), names.end());
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
}

TEST_F(PytorchCheckpointTest, LegacyFormatIsAClearError) {
  const std::string path = (dir_ / "legacy.pt").string();
  try {
    open_model(path);
    FAIL() << "legacy file opened";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::unsupported);
    EXPECT_EQ(std::string(error.what()),
              path +
                  ": legacy PyTorch format (saved before PyTorch 1.6 or with "
                  "_use_new_zipfile_serialization=False) is not supported; re-save it with "
                  "torch.save from PyTorch 1.6 or later (byte 0)");
  }
}

TEST_F(PytorchCheckpointTest, InspectListsTheCheckpointsTensorsAndGlobals) {
  std::ostringstream out, err;
  const int code = cli::run_inspect(
      {.sources = {{(dir_ / "resnet18.pt").string(), ""}}, .metadata = true, .json = true}, out,
      err);
  ASSERT_EQ(code, 0) << err.str();
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  ASSERT_EQ(parser.parse(out.str()).get(root), simdjson::SUCCESS) << out.str();
  EXPECT_EQ(std::string_view(simdjson::dom::array(root["files"]).at(0)["format"]), "pytorch-zip");
  EXPECT_EQ(simdjson::dom::array(root["tensors"]).size(), manifest("resnet18.pt").size());
  EXPECT_NE(out.str().find("pytorch.globals"), std::string::npos);
  EXPECT_NE(out.str().find("torch.FloatStorage"), std::string::npos);
}

TEST_F(PytorchCheckpointTest, FolderOfCheckpointsOpensEachOne) {
  const fs::path folder = dir_ / "folder";
  fs::create_directories(folder);
  fs::copy_file(dir_ / "dtypes.pt", folder / "a.pt", fs::copy_options::overwrite_existing);
  fs::copy_file(dir_ / "nested.ckpt", folder / "b.ckpt", fs::copy_options::overwrite_existing);
  const Model model = open_model(folder.string());
  ASSERT_EQ(model.files().size(), 2u);
  EXPECT_EQ(model.tensors().size(), manifest("dtypes.pt").size() + manifest("nested.ckpt").size());
}

}  // namespace
}  // namespace weightmap
