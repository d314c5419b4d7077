# ccache with precompiled headers: gcc needs -fpch-preprocess, clang a PCH without a timestamp (so that a
# rebuilt PCH is the same file), and ccache needs these sloppiness flags; otherwise every torch TU misses.
# CCACHE_BASEDIR lets another clone of the tree hit the same cache.
if(SDRPN_USE_CCACHE)
  find_program(SDRPN_CCACHE ccache)
  if(SDRPN_CCACHE)
    set(CMAKE_CXX_COMPILER_LAUNCHER
        ${CMAKE_COMMAND} -E env "CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime"
        "CCACHE_BASEDIR=${PROJECT_SOURCE_DIR}"
        ${SDRPN_CCACHE})
    if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
      add_compile_options(-fpch-preprocess)
    elseif(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
      add_compile_options(-Xclang -fno-pch-timestamp)
    endif()
    message(STATUS "sdrpn: using ccache ${SDRPN_CCACHE}")
  endif()
endif()
