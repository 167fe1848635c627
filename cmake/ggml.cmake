# Finds the ggml the adapter (weightmap::ggml) links, in this order:
#   1. a `ggml` target already in the build: an engine that did add_subdirectory(ggml)
#      before adding weightmap gets one ggml in its process, its own;
#   2. the install at WEIGHTMAP_GGML_DIR when given, else an installed ggml package that
#      find_package sees (ggml_DIR, CMAKE_PREFIX_PATH);
#   3. only when weightmap is the top-level project: the ggml scripts/build-ggml.sh builds
#      from node-llama-cpp's llama.cpp into .deps/ (built once; later runs print its prefix).
# The adapter needs ggml's CPU backend only; the RPC backend is for weightmap's own tests
# (tests/ggml/CMakeLists.txt looks for it).
# Sets WEIGHTMAP_GGML_LIBRARY (the target to link) and WEIGHTMAP_GGML_FROM (how it was found:
# target or package; cmake/install.cmake installs the adapter only for a package).
set(WEIGHTMAP_GGML_DIR "" CACHE PATH
    "Install prefix of ggml (holding lib/cmake/ggml); empty: find_package, else build it")

if(TARGET ggml AND NOT WEIGHTMAP_GGML_DIR)
  set(WEIGHTMAP_GGML_LIBRARY ggml)
  set(WEIGHTMAP_GGML_FROM target)
  set(WEIGHTMAP_GGML_CPU_TARGETS ggml-cpu ggml::ggml-cpu)
  message(STATUS "weightmap::ggml links the ggml target of this build")
else()
  if(WEIGHTMAP_GGML_DIR)
    find_package(ggml CONFIG REQUIRED PATHS "${WEIGHTMAP_GGML_DIR}" NO_DEFAULT_PATH)
  else()
    find_package(ggml CONFIG QUIET)
    if(NOT ggml_FOUND AND PROJECT_IS_TOP_LEVEL)
      message(STATUS "ggml not found: building it with scripts/build-ggml.sh")
      execute_process(
        COMMAND "${PROJECT_SOURCE_DIR}/scripts/build-ggml.sh"
        OUTPUT_VARIABLE WEIGHTMAP_BUILT_GGML_DIR
        OUTPUT_STRIP_TRAILING_WHITESPACE
        RESULT_VARIABLE WEIGHTMAP_BUILD_GGML_RESULT)
      if(NOT WEIGHTMAP_BUILD_GGML_RESULT EQUAL 0)
        message(FATAL_ERROR "scripts/build-ggml.sh failed; pass -DWEIGHTMAP_GGML=OFF to build "
                            "the core alone, or -DWEIGHTMAP_GGML_DIR=<ggml install prefix>")
      endif()
      find_package(ggml CONFIG REQUIRED PATHS "${WEIGHTMAP_BUILT_GGML_DIR}" NO_DEFAULT_PATH)
    elseif(NOT ggml_FOUND)
      message(FATAL_ERROR "WEIGHTMAP_GGML is on but no ggml was found: add_subdirectory(ggml) "
                          "before weightmap, or point ggml_DIR (or CMAKE_PREFIX_PATH) at an "
                          "installed ggml, or set WEIGHTMAP_GGML=OFF")
    endif()
  endif()
  set(WEIGHTMAP_GGML_LIBRARY ggml::ggml)
  set(WEIGHTMAP_GGML_FROM package)
  set(WEIGHTMAP_GGML_CPU_TARGETS ggml::ggml-cpu)
  message(STATUS "ggml ${ggml_VERSION} from ${ggml_DIR}")
endif()

# The adapter wraps host memory in CPU-backend buffers (ggml_backend_cpu_buffer_from_ptr).
set(WEIGHTMAP_GGML_HAS_CPU OFF)
foreach(cpu_target ${WEIGHTMAP_GGML_CPU_TARGETS})
  if(TARGET ${cpu_target})
    set(WEIGHTMAP_GGML_HAS_CPU ON)
  endif()
endforeach()
if(NOT WEIGHTMAP_GGML_HAS_CPU)
  message(FATAL_ERROR "the ggml found lacks the CPU backend (GGML_CPU=ON), which the adapter "
                      "needs")
endif()
