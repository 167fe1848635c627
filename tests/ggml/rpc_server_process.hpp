// ggml's RPC server as a child process on a free port of 127.0.0.1, killed when the object
// goes. The constructor returns once the server accepts connections.
#pragma once

#include <arpa/inet.h>
#include <ggml-rpc.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

extern char** environ;

namespace weightmap::ggml::test {

class RpcServerProcess {
 public:
  RpcServerProcess() {
    port_ = free_port();
    endpoint_ = "127.0.0.1:" + std::to_string(port_);
    int out[2];
    if (::pipe(out) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    const std::string port = std::to_string(port_);
    char* argv[] = {const_cast<char*>(WEIGHTMAP_GGML_RPC_SERVER_PATH),
                    const_cast<char*>(port.c_str()), nullptr};
    const int spawned =
        ::posix_spawn(&pid_, WEIGHTMAP_GGML_RPC_SERVER_PATH, &actions, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    output_fd_ = out[0];
    if (spawned != 0) throw std::runtime_error("could not start " WEIGHTMAP_GGML_RPC_SERVER_PATH);
    // The server prints its banner up to "transport" and then listens; a closed pipe means it
    // died, and its banner says why.
    std::string banner;
    char c = 0;
    while (banner.find("transport") == std::string::npos) {
      if (::read(output_fd_, &c, 1) != 1) throw std::runtime_error("RPC server died:\n" + banner);
      banner += c;
    }
    wait_until_listening();
  }
  ~RpcServerProcess() {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    ::close(output_fd_);
  }
  RpcServerProcess(const RpcServerProcess&) = delete;
  RpcServerProcess& operator=(const RpcServerProcess&) = delete;

  const std::string& endpoint() const { return endpoint_; }

  // The RPC device for this server (ggml registers one per endpoint).
  ggml_backend_dev_t device() const {
    return ggml_backend_reg_dev_get(ggml_backend_rpc_add_server(endpoint_.c_str()), 0);
  }

 private:
  static sockaddr_in loopback(int port) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return address;
  }

  // A port the kernel just handed out, so no other test or program is using it.
  static int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address = loopback(0);
    socklen_t size = sizeof(address);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) != 0) {
      ::close(fd);
      throw std::runtime_error("no free port on 127.0.0.1");
    }
    ::close(fd);
    return ntohs(address.sin_port);
  }

  // The banner comes just before listen(): connecting can be refused for that moment. ggml's
  // client aborts the process when it cannot connect, so this waits for a connection first.
  void wait_until_listening() const {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    for (;;) {
      const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in address = loopback(port_);
      const int result = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
      const int error = errno;
      ::close(fd);
      if (result == 0) return;
      if (error != ECONNREFUSED || std::chrono::steady_clock::now() > deadline) {
        throw std::runtime_error("the RPC server does not accept connections on " + endpoint_);
      }
      std::this_thread::yield();
    }
  }

  int port_ = 0;
  std::string endpoint_;
  pid_t pid_ = -1;
  int output_fd_ = -1;
};

}  // namespace weightmap::ggml::test
