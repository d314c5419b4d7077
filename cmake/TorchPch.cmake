# One precompiled <torch/torch.h> shared by every target that includes LibTorch. Parsing torch.h costs
# ~25 s per translation unit; with the PCH it is a second or two.
add_library(sdrpn_torch_pch OBJECT ${CMAKE_CURRENT_LIST_DIR}/torch_pch.cpp)
target_link_libraries(sdrpn_torch_pch PRIVATE sdrpn_torch)
target_precompile_headers(sdrpn_torch_pch PRIVATE <torch/torch.h>)

function(sdrpn_use_torch_pch target)
  target_precompile_headers(${target} REUSE_FROM sdrpn_torch_pch)
endfunction()
