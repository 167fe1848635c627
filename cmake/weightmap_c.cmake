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

# `cmake --install` puts libweightmap_c beside the other libraries and python/weightmap where
# Debian's python3 looks (lib/python3.X/dist-packages under the prefix), with the library's
# path relative to the package, so the package finds it without ldconfig or LD_LIBRARY_PATH.
if(TARGET weightmap_c)
  include(GNUInstallDirs)
  set(weightmap_python_dir "lib/python3/dist-packages")
  if(EXISTS /usr/bin/python3)
    execute_process(COMMAND /usr/bin/python3 -c "import sys; print(sys.version_info[1])"
                    OUTPUT_VARIABLE weightmap_python_minor OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(weightmap_python_minor)
      set(weightmap_python_dir "lib/python3.${weightmap_python_minor}/dist-packages")
    endif()
  endif()
  set(WEIGHTMAP_PYTHON_INSTALL_DIR "${weightmap_python_dir}" CACHE STRING
      "Where cmake --install puts the Python package, relative to the prefix")
  install(TARGETS weightmap_c LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/python/weightmap
          DESTINATION ${WEIGHTMAP_PYTHON_INSTALL_DIR} PATTERN __pycache__ EXCLUDE)
  file(RELATIVE_PATH weightmap_library_from_package
       "/prefix/${WEIGHTMAP_PYTHON_INSTALL_DIR}/weightmap"
       "/prefix/${CMAKE_INSTALL_LIBDIR}/libweightmap_c.so.${PROJECT_VERSION_MAJOR}")
  file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/weightmap_python/_library_location.py
       "# Written by cmake/weightmap_c.cmake: libweightmap_c relative to this package.\n"
       "LIBRARY = \"${weightmap_library_from_package}\"\n")
  install(FILES ${CMAKE_CURRENT_BINARY_DIR}/weightmap_python/_library_location.py
          DESTINATION ${WEIGHTMAP_PYTHON_INSTALL_DIR}/weightmap)
endif()
