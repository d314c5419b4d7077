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

# ThreadSanitizer (not with the above). Only the tests that run work on several threads are built
# (tests/CMakeLists.txt, SDRPN_THREAD_TESTS); scripts/sanitize threads runs them.
if(SDRPN_SANITIZE_THREADS)
  if(SDRPN_SANITIZE OR SDRPN_BUILD_FUZZ)
    message(FATAL_ERROR "SDRPN_SANITIZE_THREADS cannot be combined with SDRPN_SANITIZE or SDRPN_BUILD_FUZZ")
  endif()
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
  message(STATUS "sdrpn: ThreadSanitizer build")
endif()
