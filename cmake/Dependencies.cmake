# Third-party packages. Debian 12 names are in scripts/setup.
find_package(Torch REQUIRED)
find_package(Threads REQUIRED)

# LibTorch's imported targets carry the ABI flag in TORCH_CXX_FLAGS; wrap it in one interface target.
add_library(sdrpn_torch INTERFACE)
target_link_libraries(sdrpn_torch INTERFACE ${TORCH_LIBRARIES})
target_include_directories(sdrpn_torch SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})
separate_arguments(_sdrpn_torch_flags UNIX_COMMAND "${TORCH_CXX_FLAGS}")
target_compile_options(sdrpn_torch INTERFACE ${_sdrpn_torch_flags})

# A CUDA LibTorch (TorchConfig finds c10_cuda): CUDA graphs and the allocator's statistics are compiled in.
if(C10_CUDA_LIBRARY)
  target_compile_definitions(sdrpn_torch INTERFACE SDRPN_WITH_CUDA=1)
  # c10/cuda and ATen/cuda headers include the CUDA runtime's.
  find_package(CUDAToolkit QUIET)
  if(CUDAToolkit_FOUND)
    target_include_directories(sdrpn_torch SYSTEM INTERFACE ${CUDAToolkit_INCLUDE_DIRS})
  endif()
  message(STATUS "sdrpn: LibTorch with CUDA (${C10_CUDA_LIBRARY})")
endif()

find_package(nlohmann_json 3.9 QUIET)
if(NOT nlohmann_json_FOUND)
  # A machine with LibTorch and nothing else (the GPU box of bench/gpu.sh): the bundled copy of the headers.
  message(STATUS "sdrpn: nlohmann_json not installed, using third_party/nlohmann_json")
  add_library(nlohmann_json INTERFACE)
  target_include_directories(nlohmann_json SYSTEM INTERFACE ${PROJECT_SOURCE_DIR}/third_party/nlohmann_json/include)
  add_library(nlohmann_json::nlohmann_json ALIAS nlohmann_json)
endif()

if(NOT SDRPN_TORCH_ONLY)
  find_package(OpenCV REQUIRED COMPONENTS core imgproc imgcodecs)
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(SENTENCEPIECE REQUIRED IMPORTED_TARGET sentencepiece)
  # Debian's libsentencepiece exports its own copy of protobuf-lite's internals. LibTorch loads the full
  # libprotobuf only indirectly, so the dynamic linker would bind libprotobuf's start-up code to
  # sentencepiece's copy and crash before main(). Making libprotobuf a direct dependency that comes first
  # keeps every protobuf symbol bound to libprotobuf.
  find_library(SDRPN_PROTOBUF_LIB NAMES protobuf REQUIRED)
  add_library(sdrpn_sentencepiece INTERFACE)
  target_link_libraries(sdrpn_sentencepiece INTERFACE "-Wl,--push-state,--no-as-needed" ${SDRPN_PROTOBUF_LIB}
    "-Wl,--pop-state" PkgConfig::SENTENCEPIECE)
  find_package(SQLite3 REQUIRED)
endif()

if(SDRPN_BUILD_GUI)
  find_package(Qt6 REQUIRED COMPONENTS Core Gui Widgets PrintSupport Test)
  find_package(QCustomPlotQt6 REQUIRED)
endif()

if(SDRPN_BUILD_TESTS)
  find_package(GTest REQUIRED)
  include(GoogleTest)
endif()
if(SDRPN_BUILD_BENCH)
  find_package(benchmark QUIET)
endif()
