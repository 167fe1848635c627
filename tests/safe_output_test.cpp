// Every output goes to a temporary file beside the target and is renamed into place only when
// whole: a failed write keeps the old output, Ctrl-C (SIGINT) or SIGTERM in the middle of a
// write leaves neither a partial output nor the temporary file, and a temporary file left by
// a process that is gone is removed by the next write of the same output.
#include <fcntl.h>
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "support/file_bytes.hpp"
#include "support/safetensors_bytes.hpp"
#include "support/temp_dir.hpp"
#include "weightmap/error.hpp"
#include "weightmap/model.hpp"
#include "weightmap/writer.hpp"

extern char** environ;

namespace weightmap {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using testing::TempDir;

std::vector<std::string> names_in(const fs::path& folder) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(folder)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

const std::vector<TensorToWrite> kTwoTensors = {{"a", DType::F32, {4}}, {"b", DType::F32, {4}}};

void zeros(std::size_t, std::uint64_t, std::span<std::byte> out) {
  std::fill(out.begin(), out.end(), std::byte{0});
}

TEST(SafeOutput, AFailedWriteKeepsTheOldOutputAndLeavesNoTemporaryFile) {
  const TempDir dir;
  for (const bool gguf : {false, true}) {
    const std::string out = dir / (gguf ? "out.gguf" : "out.safetensors");
    testing::write_file(out, std::string_view("the old output"));
    // A small buffer: the temporary file exists and holds bytes when the source fails.
    const auto failing = [](std::size_t tensor, std::uint64_t, std::span<std::byte> bytes) {
      if (tensor == 1) throw Error(ErrorCode::io, "source failed");
      std::fill(bytes.begin(), bytes.end(), std::byte{1});
    };
    EXPECT_THROW(gguf ? write_gguf(out, kTwoTensors, failing, {.chunk_bytes = 8})
                      : write_safetensors(out, kTwoTensors, failing, {.chunk_bytes = 8}),
                 Error);
    EXPECT_EQ(testing::file_bytes(out), "the old output");
  }
  EXPECT_THAT(names_in(dir.path()), ElementsAre("out.gguf", "out.safetensors"));
}

TEST(SafeOutput, SuccessReplacesTheOldOutputAndLeavesOnlyIt) {
  const TempDir dir;
  const std::string out = dir / "out.safetensors";
  testing::write_file(out, std::string_view("the old output"));
  write_safetensors(out, kTwoTensors, zeros);
  EXPECT_EQ(open_model(out).tensors().size(), 2u);
  EXPECT_THAT(names_in(dir.path()), ElementsAre("out.safetensors"));
}

TEST(SafeOutput, AnOutputThatIsAFolderIsRefusedBeforeAnythingIsWritten) {
  const TempDir dir;
  fs::create_directory(dir / "out.safetensors");
  try {
    write_safetensors(dir / "out.safetensors", kTwoTensors, zeros);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::io);
    EXPECT_EQ(e.file(), dir / "out.safetensors");
  }
  EXPECT_THAT(names_in(dir.path()), ElementsAre("out.safetensors"));
}

TEST(SafeOutput, AnOutputThatIsAnInputUnderAnotherNameIsRefusedAndMissingInputsAreFine) {
  const TempDir dir;
  write_safetensors(dir / "in.safetensors", kTwoTensors, zeros);
  fs::create_hard_link(dir / "in.safetensors", dir / "link.safetensors");
  const std::vector<std::string> inputs = {dir / "missing.safetensors", dir / "in.safetensors"};
  try {
    refuse_output_over_inputs(dir / "link.safetensors", inputs);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::invalid_argument);
    EXPECT_EQ(e.file(), dir / "link.safetensors");
    EXPECT_THAT(e.message(), ::testing::HasSubstr(dir / "in.safetensors"));
  }
  EXPECT_NO_THROW(refuse_output_over_inputs(dir / "new.safetensors", inputs));
  EXPECT_NO_THROW(refuse_output_over_inputs(dir / "missing.safetensors", inputs));
}

// A process id that no process has: a child that has exited and been reaped.
pid_t dead_pid() {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return pid;
}

TEST(SafeOutput, TemporariesOfProcessesThatAreGoneAreRemovedOthersKept) {
  const TempDir dir;
  const pid_t gone = dead_pid();
  ASSERT_EQ(::kill(gone, 0), -1);
  const std::string stale = fmt::format(".out.safetensors.partial-{}-0000abcd", gone);
  const std::string locked = fmt::format(".out.safetensors.partial-{}-0000abce", gone);
  const std::string alive = ".out.safetensors.partial-1-0000abcf";  // init never exits
  const std::string other_output = fmt::format(".other.safetensors.partial-{}-0000abcd", gone);
  const std::string not_ours = ".out.safetensors.partial-by-someone-else";
  for (const auto& name : {stale, locked, alive, other_output, not_ours}) {
    testing::write_file(dir / name, std::string_view("partial"));
  }
  // A writer that is still at work holds the lock, whatever its process id looks like from
  // here (another pid namespace, say).
  const int held = ::open((dir / locked).c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(held, 0);
  ASSERT_EQ(::flock(held, LOCK_EX | LOCK_NB), 0);

  write_safetensors(dir / "out.safetensors", kTwoTensors, zeros);
  ::close(held);
  std::vector<std::string> want = {alive, locked, other_output, not_ours, "out.safetensors"};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(names_in(dir.path()), want);
}

// --- signals, with the real binary as a child process ---

// Runs `weightmap sample OUT --size SIZE` as a child and returns its pid; stdout and stderr
// go to /dev/null.
pid_t spawn_sample(const std::string& out, const std::string& size) {
  const std::vector<std::string> args = {WEIGHTMAP_CLI_PATH, "sample", out, "--size", size,
                                         "--tensors",        "16"};
  std::vector<char*> argv;
  for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  const int failed = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  return failed == 0 ? pid : -1;
}

// The name of the next file created in the watched folder that starts with `prefix`, or
// nullopt when none appears within a minute (a failure bound, not a synchronisation).
std::optional<std::string> next_created(int inotify_fd, const std::string& prefix) {
  alignas(inotify_event) char buffer[4096];
  for (;;) {
    pollfd ready{inotify_fd, POLLIN, 0};
    if (::poll(&ready, 1, 60'000) != 1) return std::nullopt;
    const ssize_t n = ::read(inotify_fd, buffer, sizeof buffer);
    if (n <= 0) return std::nullopt;
    for (ssize_t at = 0; at < n;) {
      const auto* event = reinterpret_cast<const inotify_event*>(buffer + at);
      if (event->len > 0 && std::string_view(event->name).starts_with(prefix)) {
        return std::string(event->name);
      }
      at += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
    }
  }
}

class SafeOutputSignal : public ::testing::TestWithParam<int> {};

// The child is stopped (SIGSTOP, confirmed by waitpid) while its temporary file exists and
// the old output is untouched: it is provably in the middle of the write when the signal
// comes. If it was quicker than us (finished before the stop landed), try again.
TEST_P(SafeOutputSignal, MidWriteLeavesNeitherAPartialOutputNorATemporaryFile) {
  const int signal = GetParam();
  const TempDir dir;
  const std::string out = dir / "out.safetensors";
  testing::write_file(out, std::string_view("the old output"));
  bool interrupted = false;
  for (int attempt = 0; attempt < 5 && !interrupted; ++attempt) {
    const int watch = ::inotify_init1(IN_CLOEXEC);
    ASSERT_GE(watch, 0);
    ASSERT_GE(::inotify_add_watch(watch, dir.path().c_str(), IN_CREATE), 0);
    const pid_t child = spawn_sample(out, "256M");
    ASSERT_GT(child, 0);
    const auto temp = next_created(watch, ".out.safetensors.partial-");
    ::close(watch);
    ASSERT_TRUE(temp.has_value()) << "no temporary file appeared";
    ASSERT_EQ(::kill(child, SIGSTOP), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, WUNTRACED), child);
    if (!WIFSTOPPED(status)) {  // it finished first: the new output is whole
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
      testing::write_file(out, std::string_view("the old output"));
      continue;
    }
    const bool mid_write = fs::exists(dir / *temp) && testing::file_bytes(out) == "the old output";
    ASSERT_EQ(::kill(child, signal), 0);
    ASSERT_EQ(::kill(child, SIGCONT), 0);
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    if (!mid_write) {  // stopped between its rename and its exit
      testing::write_file(out, std::string_view("the old output"));
      continue;
    }
    interrupted = true;
    ASSERT_TRUE(WIFSIGNALED(status)) << "exit status " << status;
    EXPECT_EQ(WTERMSIG(status), signal);  // the default action ran after the clean-up
  }
  ASSERT_TRUE(interrupted) << "the write finished before it could be stopped, 5 times";
  EXPECT_EQ(testing::file_bytes(out), "the old output");
  EXPECT_THAT(names_in(dir.path()), ElementsAre("out.safetensors"));
}

INSTANTIATE_TEST_SUITE_P(IntAndTerm, SafeOutputSignal, ::testing::Values(SIGINT, SIGTERM),
                         [](const auto& param_info) {
                           return param_info.param == SIGINT ? "Int" : "Term";
                         });

}  // namespace
}  // namespace weightmap
