# lld links the test executables (LibTorch, OpenCV, Qt, debug info) about four times faster than ld.bfd,
# and a build of the suite is mostly links once ccache has the objects. Link options do not enter
# ccache's keys, so switching linkers keeps the cache.
if(SDRPN_USE_LLD AND CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  include(CheckLinkerFlag)
  check_linker_flag(CXX "-fuse-ld=lld" SDRPN_HAVE_LLD)
  if(SDRPN_HAVE_LLD)
    add_link_options(-fuse-ld=lld)
    message(STATUS "sdrpn: linking with lld")
  endif()
endif()
