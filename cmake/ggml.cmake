# Finds ggml for the adapter (weightmap::ggml): the install at WEIGHTMAP_GGML_DIR when given,
# else an installed ggml that find_package sees, else the one scripts/build-ggml.sh builds from
# node-llama-cpp's llama.cpp into .deps/ (built once; later runs only print its prefix).
set(WEIGHTMAP_GGML_DIR "" CACHE PATH
    "Install prefix of ggml (holding lib/cmake/ggml); empty: find_package, else build it")

if(WEIGHTMAP_GGML_DIR)
  find_package(ggml CONFIG REQUIRED PATHS "${WEIGHTMAP_GGML_DIR}" NO_DEFAULT_PATH)
else()
  find_package(ggml CONFIG QUIET)
  if(NOT ggml_FOUND)
    message(STATUS "ggml not found: building it with scripts/build-ggml.sh")
    execute_process(
      COMMAND "${CMAKE_SOURCE_DIR}/scripts/build-ggml.sh"
      OUTPUT_VARIABLE WEIGHTMAP_BUILT_GGML_DIR
      OUTPUT_STRIP_TRAILING_WHITESPACE
      RESULT_VARIABLE WEIGHTMAP_BUILD_GGML_RESULT)
    if(NOT WEIGHTMAP_BUILD_GGML_RESULT EQUAL 0)
      message(FATAL_ERROR "scripts/build-ggml.sh failed; pass -DWEIGHTMAP_GGML=OFF to build "
                          "the core alone, or -DWEIGHTMAP_GGML_DIR=<ggml install prefix>")
    endif()
    find_package(ggml CONFIG REQUIRED PATHS "${WEIGHTMAP_BUILT_GGML_DIR}" NO_DEFAULT_PATH)
  endif()
endif()

# The adapter needs the CPU backend (host-pointer buffers, type traits) and the RPC backend
# (its tests spread a model over two devices).
foreach(backend ggml-cpu ggml-rpc)
  if(NOT TARGET ggml::${backend})
    message(FATAL_ERROR "ggml at ${ggml_DIR} lacks the ${backend} backend; rebuild it with "
                        "scripts/build-ggml.sh")
  endif()
endforeach()
message(STATUS "ggml ${ggml_VERSION} from ${ggml_DIR}")
