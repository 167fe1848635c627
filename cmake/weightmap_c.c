/* libweightmap_c's own translation unit: CMake wants one source per library. Everything else
   comes from the core's archive, linked in whole (see the weightmap_c target). */
typedef int weightmap_c_library_has_one_source;
