// ggml's RPC backend keeps, for the life of the process, one registry entry per server
// endpoint and one buffer type per device, allocated with new and never freed (by design: ggml
// hands out raw pointers to them). LeakSanitizer would report them at exit of every test that
// talks to an RPC server; they are ggml's, not weightmap's, so they are suppressed by name.
extern "C" const char* __lsan_default_suppressions();
extern "C" const char* __lsan_default_suppressions() {
  return "leak:ggml_backend_rpc_add_server\n"
         "leak:ggml_backend_rpc_buffer_type\n";
}
