# The C API as a shared library for bindings that load a library at run time (python/weightmap
# uses it through ctypes): the static core linked in whole, only the weightmap_* C symbols
# exported. Not built with the sanitizers (their runtime cannot be loaded into python3).
if(NOT BUILD_SHARED_LIBS AND NOT WEIGHTMAP_SANITIZE)
  set_target_properties(weightmap PROPERTIES POSITION_INDEPENDENT_CODE ON)
  add_library(weightmap_c SHARED ${PROJECT_SOURCE_DIR}/cmake/weightmap_c.c)
  target_link_libraries(weightmap_c PRIVATE "$<LINK_LIBRARY:WHOLE_ARCHIVE,weightmap>")
  target_link_options(weightmap_c PRIVATE
    "-Wl,--version-script=${PROJECT_SOURCE_DIR}/cmake/weightmap_c.map" -Wl,--no-undefined)
  set_target_properties(weightmap_c PROPERTIES VERSION ${PROJECT_VERSION}
    SOVERSION ${PROJECT_VERSION_MAJOR} LINKER_LANGUAGE CXX
    LINK_DEPENDS ${PROJECT_SOURCE_DIR}/cmake/weightmap_c.map)
endif()
