#!/usr/bin/env bash
# bench/gpu.sh: the GPU benchmark, ours beside Hugging Face transformers, in one command.
#
# On a machine with an NVIDIA GPU, a CUDA build of PyTorch (its LibTorch is what the core builds against),
# transformers, CMake, ninja and a C++17 compiler (no Qt, OpenCV or sentencepiece needed):
#   1. builds the LibTorch-only core and sdrpn-bench (-DSDRPN_TORCH_ONLY=ON);
#   2. checks the GPU against the CPU on the demo shapes, LLaVA and Qwen2.5-VL (sdrpn-bench --check: fp32,
#      bf16 and fp16);
#   3. for each preset, runs sdrpn-bench and bench/hf_reference.py on the same shapes and prompt, one after
#      the other on the same GPU, and prints our time over theirs for each row (bench/compare.py).
#
#   bench/gpu.sh [--presets "llava-1.5-7b qwen2.5-vl-7b llava-1.5-13b"] [--out DIR] [--repeats N] [--dtype bf16|fp16]
#                [--build-dir DIR] [--skip-hf] [--skip-check] [--also-unfused]
#
# --also-unfused: after each preset, runs sdrpn-bench once more with SDRPN_FUSED_PROJECTIONS=0 (separate q/k/v
# and gate/up products) and prints fused over separate for each row (about 40 s more per preset on an H100).
#
# Results: DIR (default $OUT, else bench-gpu) holds summary.md (everything printed, the comparison tables
# included), build.log, check-<dtype>.log, ours-<preset>.json and hf-<preset>.json. Exit status: 0 when everything
# ran (a missed target is reported, not an error), 1 when the build or the GPU check failed (a failed check
# still runs the benchmarks, flagged in summary.md).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
presets="llava-1.5-7b qwen2.5-vl-7b llava-1.5-13b"
out=${OUT:-$here/bench-gpu}
repeats=10
dtype=bf16
build=$here/build-gpu
skip_hf=0
skip_check=0
also_unfused=0
prefix_tokens=35  # BOS + the LLaVA-1.5 system prompt
suffix_tokens=10  # the question
while [ $# -gt 0 ]; do
  case "$1" in
    --presets) presets=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --dtype) dtype=$2; shift 2 ;;
    --build-dir) build=$2; shift 2 ;;
    --skip-hf) skip_hf=1; shift ;;
    --skip-check) skip_check=1; shift ;;
    --also-unfused) also_unfused=1; shift ;;
    -h|--help) sed -n 2,21p "$0"; exit 0 ;;
    *) echo "gpu.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
summary=$out/summary.md
: >"$summary"
say() { echo "$@" | tee -a "$summary"; }
t_start=$(date +%s)
status=0
elapsed() { echo "$(( $(date +%s) - t_start )) s"; }

say "# sdrpn GPU benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"
python3 - <<'EOF' 2>&1 | tee -a "$summary"
import torch
print("torch", torch.__version__, "| CUDA", torch.version.cuda, "| GPU",
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")
try:
    import transformers
    print("transformers", transformers.__version__)
except Exception as e:
    print("transformers: not importable:", e)
EOF
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader 2>/dev/null | tee -a "$summary"

# 1. Build.
prefix_path=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
[ -d /usr/local/cuda/bin ] && export PATH=/usr/local/cuda/bin:$PATH
jobs=$(nproc 2>/dev/null || echo 4)
say "## build ($jobs jobs)"
if ! { cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSDRPN_TORCH_ONLY=ON \
         -DSDRPN_BUILD_TESTS=OFF -DSDRPN_USE_CCACHE=OFF -DCMAKE_PREFIX_PATH="$prefix_path" &&
       cmake --build "$build" --target sdrpn-bench -j "$jobs"; } >"$out/build.log" 2>&1; then
  say "build FAILED after $(elapsed); the end of build.log:"
  grep -E "error|Error|FAILED" "$out/build.log" | head -30 | tee -a "$summary"
  tail -30 "$out/build.log"
  exit 1
fi
bench=$build/bench/sdrpn-bench
say "built in $(elapsed)"

# 2. The GPU against the CPU (demo shapes: fp32 must match the CPU, the compute dtype within its rounding).
if [ "$skip_check" = 0 ]; then
  # The compute dtype first, then the other 16-bit type (LLaVA and Qwen2.5-VL demo shapes each time).
  check_types=$dtype
  case "$dtype" in bf16) check_types="bf16 fp16" ;; fp16) check_types="fp16 bf16" ;; esac
  for t in $check_types; do
    say "## check ($t)"
    if ! "$bench" --check --preset demo --device cuda --dtype "$t" --repeats 1 --decode-tokens 4 \
        --answer-tokens 2 >"$out/check-$t.log" 2>&1; then
      grep -E "^check|checks:|sdrpn-bench:" "$out/check-$t.log" | tee -a "$summary"
      say "GPU check ($t) FAILED after $(elapsed): the timings below are not to be trusted"
      status=1
    else
      grep -E "^check|checks:" "$out/check-$t.log" | tee -a "$summary"
      say "checked in $(elapsed)"
    fi
  done
fi

# 3. Ours, then theirs, preset by preset.
for preset in $presets; do
  say "## $preset"
  common=(--repeats "$repeats" --prefix-tokens "$prefix_tokens" --suffix-tokens "$suffix_tokens" --dtype "$dtype")
  if ! timeout "${STEP_TIMEOUT:-300}" "$bench" --preset "$preset" --device cuda "${common[@]}" --decode-tokens 32 \
      --json "$out/ours-$preset.json" 2>&1 | tee -a "$summary"; then
    say "sdrpn-bench FAILED on $preset"
    continue
  fi
  if [ "$skip_hf" = 0 ]; then
    PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 timeout "${STEP_TIMEOUT:-300}" python3 "$here/bench/hf_reference.py" --preset "$preset" --device cuda \
      "${common[@]}" --decode-tokens 32 --json "$out/hf-$preset.json" 2>&1 | tee -a "$summary"
    python3 "$here/bench/compare.py" "$out/ours-$preset.json" "$out/hf-$preset.json" --markdown 2>&1 \
      | tee -a "$summary"
  fi
  if [ "$also_unfused" = 1 ]; then
    say "### $preset, separate q/k/v and gate/up products (SDRPN_FUSED_PROJECTIONS=0)"
    if SDRPN_FUSED_PROJECTIONS=0 timeout "${STEP_TIMEOUT:-300}" "$bench" --preset "$preset" --device cuda "${common[@]}" \
        --decode-tokens 32 --json "$out/ours-$preset-unfused.json" >"$out/ours-$preset-unfused.log" 2>&1; then
      python3 "$here/bench/compare.py" --ab "$out/ours-$preset.json" "$out/ours-$preset-unfused.json" 2>&1 \
        | tee -a "$summary"
    else
      say "sdrpn-bench (unfused) FAILED on $preset; see ours-$preset-unfused.log"
    fi
  fi
  say "$preset done after $(elapsed)"
done
say "total $(elapsed)"
exit "$status"
