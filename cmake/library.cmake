# The core library, weightmap::weightmap. Position-independent by default, so the static
# library links into an engine's shared library; built with hidden symbols, so a shared
# libweightmap exports only what include/weightmap/ declares (weightmap/export.hpp).
file(GLOB_RECURSE WEIGHTMAP_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/*.cpp)
# The ggml adapter is its own library; nothing in the core sees ggml.
list(FILTER WEIGHTMAP_SOURCES EXCLUDE REGEX "/src/ggml/")
# Platform files are named after what they use (docs/design.md, "Porting to another OS"):
# _posix for any POSIX system, _linux for Linux only, and a port's own suffix (_windows).
# A build takes the files of its system; portable files carry no suffix.
if(NOT UNIX)
  list(FILTER WEIGHTMAP_SOURCES EXCLUDE REGEX "_posix\\.cpp$")
endif()
if(NOT CMAKE_SYSTEM_NAME STREQUAL "Linux")
  list(FILTER WEIGHTMAP_SOURCES EXCLUDE REGEX "_linux\\.cpp$")
endif()
if(NOT WIN32)
  list(FILTER WEIGHTMAP_SOURCES EXCLUDE REGEX "_windows\\.cpp$")
endif()
add_library(weightmap ${WEIGHTMAP_SOURCES})
add_library(weightmap::weightmap ALIAS weightmap)

# weightmap/version.hpp, from project(VERSION ...).
set(WEIGHTMAP_GENERATED_INCLUDE_DIR ${PROJECT_BINARY_DIR}/include)
configure_file(${PROJECT_SOURCE_DIR}/cmake/version.hpp.in
               ${WEIGHTMAP_GENERATED_INCLUDE_DIR}/weightmap/version.hpp @ONLY)

if(NOT DEFINED CMAKE_POSITION_INDEPENDENT_CODE)
  set_target_properties(weightmap PROPERTIES POSITION_INDEPENDENT_CODE ON)
endif()
# Below 1.0 every minor release may change the ABI, so the soname carries MAJOR.MINOR
# (libweightmap.so.0.1); from 1.0 on it is the major version alone. The package version
# file (cmake/install.cmake) makes the same promise.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(WEIGHTMAP_SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR})
else()
  set(WEIGHTMAP_SOVERSION ${PROJECT_VERSION_MAJOR})
endif()
set_target_properties(weightmap PROPERTIES
  CXX_VISIBILITY_PRESET hidden
  VISIBILITY_INLINES_HIDDEN ON
  VERSION ${PROJECT_VERSION}
  SOVERSION ${WEIGHTMAP_SOVERSION})
target_compile_features(weightmap PUBLIC cxx_std_20)
target_include_directories(weightmap
  PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
         $<BUILD_INTERFACE:${WEIGHTMAP_GENERATED_INCLUDE_DIR}>
         $<INSTALL_INTERFACE:include>
  PRIVATE ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(weightmap PRIVATE fmt::fmt simdjson::simdjson
                      $<BUILD_INTERFACE:weightmap_warnings>)
