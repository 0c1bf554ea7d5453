#!/usr/bin/env bash
# First look at a lent GPU (run from the repo root on the device machine, with the
# wunet binary carried in .devbin/bin.tgz by tools/device_pack.sh and the Vulkan
# loader debs in .gl/): adapter features, the adapter's ceilings (bench peak),
# U-Net step profiles by GPU timestamps, the reference conv sizes, then PyTorch
# at the same sizes. Everything goes to $OUT/probe.log.
set -u
. "$(dirname "$0")/device_env.sh"
{
    date -u
    nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
    $B/wunet devices | grep -A30 -i nvidia | head -24
    echo "== bench peak"; timeout 90 $B/wunet bench peak --runs 10
    echo "== unet2d profile"; timeout 90 $B/wunet bench unet2d --runs 20 --profile | head -60
    echo "== unet3d profile"; timeout 90 $B/wunet bench unet3d --runs 10 --profile | head -60
    for a in "conv --in 1x64x256x256 --out-channels 64 --kernel 3 --pad 1" \
             "conv-transpose --in 1x128x128x128 --out-channels 64 --kernel 2 --stride 2 --pad 0"; do
        echo "== wunet bench $a"; timeout 60 $B/wunet bench $a --runs 30 | tail -2
        timeout 60 $B/wunet bench $a --runs 30 --backward | tail -1
    done
    echo "== PyTorch"; timeout 200 python3 tools/torch_unet_bench.py --runs 20
    date -u
} 2>&1 | tee "$OUT/probe.log"
