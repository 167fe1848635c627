// weightmap_ggml_rpc_server PORT: ggml's RPC server on 127.0.0.1:PORT, serving the CPU backend.
// The tests start it as a child process and kill it at the end: ggml's server loop has no stop.
#include <ggml-backend.h>
#include <ggml-rpc.h>

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: weightmap_ggml_rpc_server PORT\n");
    return 2;
  }
  // Unbuffered: the test reads the banner through a pipe to know the server got this far.
  std::setvbuf(stdout, nullptr, _IONBF, 0);
  ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
  const std::string endpoint = std::string("127.0.0.1:") + argv[1];
  ggml_backend_rpc_start_server(endpoint.c_str(), nullptr, 2, 1, &cpu);
  return 1;  // the server returns only when it failed to start
}
