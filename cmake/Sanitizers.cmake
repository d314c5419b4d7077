if(SDRPN_SANITIZE)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    message(FATAL_ERROR "SDRPN_SANITIZE needs gcc or clang")
  endif()
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
  message(STATUS "sdrpn: ASan + UBSan build")
endif()

# Fuzzing: every library gets libFuzzer's coverage instrumentation besides ASan + UBSan; the fuzz
# executables link the fuzzer itself (fuzz/CMakeLists.txt).
if(SDRPN_BUILD_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "SDRPN_BUILD_FUZZ needs clang (CXX=clang++ CC=clang); scripts/fuzz sets it up")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
    -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
  message(STATUS "sdrpn: fuzz build (libFuzzer + ASan + UBSan)")
endif()
