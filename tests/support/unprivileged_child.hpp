// Runs a piece of a test in a forked child without root's privileges. Tests run as root here
// and in CI, and root passes every permission check (a folder of mode 000 opens) and ignores
// RLIMIT_MEMLOCK (CAP_IPC_LOCK): to provoke EACCES or a refused mlock honestly, the child
// becomes `nobody` first. Not as root, the child keeps the test's own user.
#pragma once

#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <exception>
#include <functional>
#include <string>

namespace weightmap::testing {

struct ChildResult {
  bool ran = false;  // false: the child could not drop its privileges (text says why)
  std::string text;  // what the body returned
};

// Runs `body` in a forked child that is not root and returns the text it returned (an
// exception's what() when it threw). Call it while no other thread runs: a forked child of a
// single-threaded process may run any code, one of a threaded process only what is
// async-signal-safe.
inline ChildResult run_unprivileged(const std::function<std::string()>& body) {
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) return {false, "pipe failed"};
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    return {false, "fork failed"};
  }
  if (pid == 0) {
    ::close(pipe_fds[0]);
    int status = 0;
    std::string text;
    constexpr gid_t kNobody = 65534;
    if (::geteuid() == 0 &&
        (::setgroups(0, nullptr) != 0 || ::setgid(kNobody) != 0 || ::setuid(kNobody) != 0)) {
      text = "could not become nobody (setuid)";
      status = 3;
    } else {
      try {
        text = body();
      } catch (const std::exception& e) {
        text = e.what();
      }
    }
    for (std::size_t done = 0; done < text.size();) {
      const ssize_t n = ::write(pipe_fds[1], text.data() + done, text.size() - done);
      if (n <= 0) break;
      done += static_cast<std::size_t>(n);
    }
    ::_exit(status);
  }
  ::close(pipe_fds[1]);
  std::string text;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(pipe_fds[0], buffer, sizeof buffer);
    if (n <= 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(pipe_fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  const bool ran = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  return {ran, ran ? text : "the child failed: " + text};
}

}  // namespace weightmap::testing
