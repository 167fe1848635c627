// Paths that are not plain model files: opening never blocks (a FIFO), and every failure
// says what the system said (a symlink loop, a folder without permission, a file used as a
// folder), naming the path. Files in a folder that are not models are skipped with a note.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>

#include "support/error_text.hpp"
#include "support/gguf_bytes.hpp"
#include "support/safetensors_bytes.hpp"
#include "support/temp_dir.hpp"
#include "support/unprivileged_child.hpp"
#include "weightmap/error.hpp"
#include "weightmap/mapped_file.hpp"
#include "weightmap/model.hpp"

namespace weightmap {
namespace {

using testing::error_text;
using testing::SafetensorsBuilder;
using testing::TempDir;

void write_model(const std::string& path) {
  testing::write_file(path, SafetensorsBuilder().add("w", "F32", {2}).bytes());
}

// One f32 tensor "w" of 2 elements.
void write_gguf_model(const std::string& path) {
  test::GgufBytes gguf;
  gguf.header(1, 0).tensor_info("w", {2}, 0, 0).pad_to(32).zeros(8);
  testing::write_file(path, gguf.bytes());
}

void make_fifo(const std::string& path) { ASSERT_EQ(::mkfifo(path.c_str(), 0644), 0) << path; }

// open() of a FIFO without O_NONBLOCK waits for a writer forever: a regression hangs the test
// until ctest's timeout, and the elapsed time shows it returned at once.
TEST(OpenPaths, FifoIsRefusedAtOnce) {
  const TempDir dir;
  const std::string fifo = dir / "model.safetensors";
  make_fifo(fifo);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(error_text([&] { open_model(fifo); }), fifo + ": not a regular file (FIFO)");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(error_text([&] { MappedFile::open(fifo, Access::read_only); }),
            fifo + ": not a regular file (FIFO)");
}

TEST(OpenPaths, FifoNamedByAShardIndexIsRefusedAtOnce) {
  const TempDir dir;
  write_model(dir / "model-00001-of-00002.safetensors");
  make_fifo(dir / "model-00002-of-00002.safetensors");
  testing::write_file(dir / "model.safetensors.index.json",
                      std::string_view(R"({"weight_map": {"w": "model-00001-of-00002.safetensors",)"
                                       R"( "v": "model-00002-of-00002.safetensors"}})"));
  EXPECT_EQ(error_text([&] { open_model(dir / "model.safetensors.index.json"); }),
            dir / "model-00002-of-00002.safetensors" + ": not a regular file (FIFO)");
  EXPECT_EQ(error_text([&] { open_model(dir.path()); }),
            dir / "model-00002-of-00002.safetensors" + ": not a regular file (FIFO)");
}

TEST(OpenPaths, OtherKindsOfFileAreNamed) {
  EXPECT_EQ(error_text([] { open_model("/dev/null"); }),
            "/dev/null: not a regular file (character device)");
  const TempDir dir;
  const std::string socket_path = dir / "model.gguf";
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  ASSERT_LT(socket_path.size(), sizeof address.sun_path);
  std::memcpy(address.sun_path, socket_path.c_str(), socket_path.size() + 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
  // A socket cannot be opened at all: the system's reason is the message.
  EXPECT_EQ(error_text([&] { open_model(socket_path); }),
            socket_path + ": cannot open: No such device or address");
  ::close(fd);
  EXPECT_EQ(error_text([&] { MappedFile::open(dir.path(), Access::read_only); }),
            dir.path().string() + ": not a regular file (directory)");
}

TEST(OpenPaths, SymlinkLoopIsReportedAsSuch) {
  const TempDir dir;
  const std::string loop = dir / "model.safetensors";
  std::filesystem::create_symlink("model.safetensors", loop);
  EXPECT_EQ(error_text([&] { open_model(loop); }),
            loop + ": cannot open: Too many levels of symbolic links");
}

// Inside a folder given as the model path, the loop is an Error naming it, not a raw
// std::filesystem message.
TEST(OpenPaths, SymlinkLoopInsideAFolderNamesTheEntry) {
  const TempDir dir;
  write_model(dir / "a.safetensors");
  std::filesystem::create_symlink("b.safetensors", dir / "b.safetensors");
  EXPECT_EQ(error_text([&] { open_model(dir.path()); }),
            dir / "b.safetensors" + ": cannot open: Too many levels of symbolic links");
}

TEST(OpenPaths, FileUsedAsAFolderIsNotADirectory) {
  const TempDir dir;
  write_model(dir / "model.safetensors");
  const std::string path = dir / "model.safetensors/x.safetensors";
  EXPECT_EQ(error_text([&] { open_model(path); }), path + ": cannot open: Not a directory");
}

TEST(OpenPaths, MissingFileSaysSo) {
  const TempDir dir;
  const std::string path = dir / "missing.safetensors";
  EXPECT_EQ(error_text([&] { open_model(path); }),
            path + ": cannot open: No such file or directory");
}

// A file inside a folder the user may not enter is EACCES, not "no such file". As root the
// check would pass, so the open runs in a child that is not root.
TEST(OpenPaths, FileInAnUnreadableFolderIsPermissionDenied) {
  const TempDir dir;
  std::filesystem::permissions(dir.path(), std::filesystem::perms::all ^
                                               std::filesystem::perms::group_write ^
                                               std::filesystem::perms::others_write);
  const std::string locked = dir / "locked";
  std::filesystem::create_directory(locked);
  write_model(locked + "/model.safetensors");
  std::filesystem::permissions(locked, std::filesystem::perms::none);
  const testing::ChildResult result = testing::run_unprivileged(
      [&] { return error_text([&] { open_model(locked + "/model.safetensors"); }); });
  std::filesystem::permissions(locked, std::filesystem::perms::owner_all);
  ASSERT_TRUE(result.ran) << result.text;
  EXPECT_EQ(result.text, locked + "/model.safetensors: cannot open: Permission denied");
}

// A Hugging Face folder's training_args.bin is a pickle, not weights.
TEST(OpenPaths, JunkBesideAModelInAFolderIsSkippedWithANote) {
  const TempDir dir;
  write_gguf_model(dir / "model.gguf");
  testing::write_file(dir / "training_args.bin", std::string_view("\x80\x02}q\x00.", 6));
  const Model model = open_model(dir.path());
  ASSERT_EQ(model.files().size(), 1u);
  EXPECT_EQ(model.files()[0].path, dir / "model.gguf");
  ASSERT_EQ(model.notes().size(), 1u);
  EXPECT_EQ(model.notes()[0], dir / "training_args.bin" +
                                  ": skipped: not a model file weightmap can read (expected "
                                  "safetensors, GGUF or a PyTorch zip checkpoint)");
}

TEST(OpenPaths, JunkNamedExplicitlyStaysAnError) {
  const TempDir dir;
  const std::string junk = dir / "training_args.bin";
  testing::write_file(junk, std::string_view("\x80\x02}q\x00.", 6));
  EXPECT_EQ(error_text([&] { open_model(junk); }),
            junk +
                ": not a model file weightmap can read (expected safetensors, GGUF or a "
                "PyTorch zip checkpoint) (byte 0)");
}

TEST(OpenPaths, FolderOfJunkOnlyNamesWhatWasSkipped) {
  const TempDir dir;
  testing::write_file(dir / "pytorch_model.bin", std::string_view("not a checkpoint"));
  EXPECT_EQ(error_text([&] { open_model(dir.path()); }),
            dir.path().string() + ": the folder holds no model file weightmap can read (" +
                dir / "pytorch_model.bin" +
                ": skipped: not a model file weightmap can read (expected safetensors, GGUF or "
                "a PyTorch zip checkpoint))");
}

// A broken safetensors file in a folder is a model with a problem, not junk: an error.
TEST(OpenPaths, MalformedModelInAFolderStaysAnError) {
  const TempDir dir;
  write_model(dir / "a.safetensors");
  testing::write_file(dir / "b.safetensors", std::string_view("\x08\0\0\0\0\0\0\0{\"x\":1}", 15));
  try {
    open_model(dir.path());
    FAIL() << "opened";
  } catch (const Error& error) {
    EXPECT_EQ(error.file(), dir / "b.safetensors");
  }
}

}  // namespace
}  // namespace weightmap
