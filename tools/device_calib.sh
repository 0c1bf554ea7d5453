#!/usr/bin/env bash
# The ../shared/calib yardstick (reg8x8_wg8x8 matmul, n = 1024) on a lent GPU, timed in
# the same run as the ceilings (bench peak), the U-Net steps in f32 and mixed precision and
# PyTorch's U-Net steps, so each figure can be quoted beside it. The calib binary is built
# here (CARGO_TARGET_DIR=target/calib cargo build --release --manifest-path
# ../shared/calib/Cargo.toml) and carried in .devbin/ as lavapipe-calib.
set -u
. "$(dirname "$0")/device_env.sh"
t() { local s=$1; shift; timeout "$s" "$@" 2>&1; }
{
date -u; nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv,noheader
echo "== calib yardstick"; WGPU_BACKEND=vulkan t 60 .devbin/lavapipe-calib 1024 reg8x8_wg8x8 | tail -2
echo "== ceilings"; t 60 $B/wunet bench peak --runs 10
for m in unet2d unet3d; do for p in f32 mixed; do
    echo "-- wunet bench $m --precision $p"
    t 60 $B/wunet bench $m --runs 20 --precision $p | grep -E "median|loss scale"
done; done
echo "== PyTorch"; t 120 python3 tools/torch_unet_bench.py --runs 20 --only unet | grep -v "^json"
echo "== calib yardstick again"; WGPU_BACKEND=vulkan t 60 .devbin/lavapipe-calib 1024 reg8x8_wg8x8 | tail -1
date -u
} 2>&1 | tee "$OUT/calib.log"
