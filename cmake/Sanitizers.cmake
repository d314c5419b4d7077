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

# ThreadSanitizer: not a build of its own. With SDRPN_THREAD_CHECK the threaded tests (the job manager, the
# studio's labeling and training jobs, the core labeling job) get a second, instrumented executable each,
# label `threads`, beside their normal one (tests/CMakeLists.txt). Their job layer is compiled again with
# -fsanitize=thread; the core's numerics link as they are, like LibTorch (one thread per job).
if(SDRPN_THREAD_CHECK AND (SDRPN_SANITIZE OR SDRPN_BUILD_FUZZ OR SDRPN_TORCH_ONLY OR
                           NOT CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang"))
  set(SDRPN_THREAD_CHECK OFF)
endif()
function(sdrpn_thread_sanitize target)
  # The torch PCH is built without it: its header is then read as text (still first), hence no warning.
  target_compile_options(${target} PRIVATE -fsanitize=thread -fno-omit-frame-pointer -Wno-invalid-pch)
  target_link_options(${target} PRIVATE -fsanitize=thread)
endfunction()
