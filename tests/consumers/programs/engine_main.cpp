// load_model's program compiled into an engine's shared library (main renamed engine_main by
// tests/consumers/add_subdirectory), called from this executable: weightmap's static library
// has to be position-independent to link into it.
int engine_main(int argc, char** argv);

int main(int argc, char** argv) { return engine_main(argc, argv); }
