#!/usr/bin/env bash
# GPU checks and benchmarks on a lent device machine (no Rust there): binaries
# built here in release mode are carried in .devbin/bin.tgz (tools/device_pack.sh),
# the Vulkan loader debs in .gl/. Usage on the device: bash tools/device_run.sh [conv|all]
set -u
. "$(dirname "$0")/device_env.sh"
nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv,noheader
$B/wunet devices | head -20
echo "== tests on the GPU"
for t in $B/test-*; do
    case "$t" in *test-wgsl) continue;; esac   # reads kernels/ by build-machine path; no GPU needed
    echo "-- $t: $(timeout 300 "$t" --test-threads 2 2>&1 | grep -E '^test result|panicked' | tr '\n' ' ')"
done
if [ -f $B/golden ]; then WUNET_GOLDEN_DIR=${GOLDEN_DIR:-tests/golden} timeout 300 $B/golden 2>&1 | grep -E "^FAIL|^golden:|worst"; fi
echo "== conv benches"
b() { echo "-- wunet bench $*"; $B/wunet bench "$@" --runs 30 | tail -3; }
b conv --in 1x64x256x256 --out-channels 64 --kernel 3 --pad 1
b conv --in 1x64x256x256 --out-channels 64 --kernel 3 --pad 1 --backward
b conv-transpose --in 1x128x128x128 --out-channels 64 --kernel 2 --stride 2 --pad 0
b conv-transpose --in 1x128x128x128 --out-channels 64 --kernel 2 --stride 2 --pad 0 --backward
b conv --in 1x32x64x64x64 --out-channels 32 --kernel 3 --pad 1
b conv --in 1x32x64x64x64 --out-channels 32 --kernel 3 --pad 1 --backward
b conv --in 8x256x64x64 --out-channels 256 --kernel 3 --pad 1
echo "== U-Net training step"
$B/wunet bench unet2d --runs 20 | tail -6
$B/wunet bench unet3d --runs 10 | tail -6
$B/wunet bench unet2d --input 64x64 --runs 20 | tail -2
if [ "${1:-conv}" = all ] && [ -f tools/device_extra.sh ]; then bash tools/device_extra.sh; fi
[ -n "${NO_TORCH:-}" ] || echo "== PyTorch cuDNN fp32 (TF32 off) at the same sizes, for scale"
[ -n "${NO_TORCH:-}" ] || timeout 120 python3 tools/torch_conv_bench.py 2>&1 | tail -12
