# `cmake --install`: headers, the libraries, the CMake package (find_package(weightmap CONFIG)
# with targets weightmap::weightmap and, when built against an installed ggml,
# weightmap::ggml) and pkg-config files (weightmap.pc, weightmap-ggml.pc).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(WEIGHTMAP_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/weightmap)
set(WEIGHTMAP_PKGCONFIG_DIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# An engine's own ggml target cannot be named by an installed package; the adapter is
# installed when it was built against an installed ggml, which its users find again.
set(WEIGHTMAP_INSTALLS_GGML OFF)
if(WEIGHTMAP_GGML AND WEIGHTMAP_GGML_FROM STREQUAL "package")
  set(WEIGHTMAP_INSTALLS_GGML ON)
endif()

if(WEIGHTMAP_INSTALLS_GGML)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/weightmap
          DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
else()
  # Without the adapter its headers would only mislead.
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/weightmap
          DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} PATTERN "ggml*.hpp" EXCLUDE)
endif()
install(FILES ${WEIGHTMAP_GENERATED_INCLUDE_DIR}/weightmap/version.hpp
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/weightmap)

install(TARGETS weightmap EXPORT weightmapTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT weightmapTargets NAMESPACE weightmap:: DESTINATION ${WEIGHTMAP_CMAKE_DIR})

if(WEIGHTMAP_INSTALLS_GGML)
  install(TARGETS weightmap_ggml EXPORT weightmapGgmlTargets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
  install(EXPORT weightmapGgmlTargets NAMESPACE weightmap:: DESTINATION ${WEIGHTMAP_CMAKE_DIR})
endif()

# A static library hands its private dependencies (fmt, simdjson) to the final link, so the
# package finds them for its users; a shared one does not need them.
if(BUILD_SHARED_LIBS)
  set(WEIGHTMAP_STATIC OFF)
else()
  set(WEIGHTMAP_STATIC ON)
endif()
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/weightmapConfig.cmake.in
  ${PROJECT_BINARY_DIR}/weightmapConfig.cmake INSTALL_DESTINATION ${WEIGHTMAP_CMAKE_DIR})
# The promise the soname makes (cmake/library.cmake): below 1.0, 0.1.x releases are
# compatible with each other and 0.2 is not; from 1.0, releases of one major version are.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(WEIGHTMAP_COMPATIBILITY SameMinorVersion)
else()
  set(WEIGHTMAP_COMPATIBILITY SameMajorVersion)
endif()
write_basic_package_version_file(${PROJECT_BINARY_DIR}/weightmapConfigVersion.cmake
  COMPATIBILITY ${WEIGHTMAP_COMPATIBILITY})
install(FILES ${PROJECT_BINARY_DIR}/weightmapConfig.cmake
              ${PROJECT_BINARY_DIR}/weightmapConfigVersion.cmake
        DESTINATION ${WEIGHTMAP_CMAKE_DIR})

# pkg-config files find the prefix from where they lie (${pcfiledir}), so an install moved
# elsewhere, or made with `cmake --install --prefix`, still points at itself.
file(RELATIVE_PATH WEIGHTMAP_PC_TO_PREFIX /prefix/${WEIGHTMAP_PKGCONFIG_DIR} /prefix)
string(REGEX REPLACE "/$" "" WEIGHTMAP_PC_TO_PREFIX "${WEIGHTMAP_PC_TO_PREFIX}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/weightmap.pc.in ${PROJECT_BINARY_DIR}/weightmap.pc
               @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/weightmap.pc DESTINATION ${WEIGHTMAP_PKGCONFIG_DIR})
if(WEIGHTMAP_INSTALLS_GGML)
  configure_file(${PROJECT_SOURCE_DIR}/cmake/weightmap-ggml.pc.in
                 ${PROJECT_BINARY_DIR}/weightmap-ggml.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/weightmap-ggml.pc DESTINATION ${WEIGHTMAP_PKGCONFIG_DIR})
endif()
