#!/usr/bin/env bash
# The up-convolution kernel (kernels/conv_up.wgsl, issue 11 item 3) on a lent GPU, in one
# short sitting: correctness on the device first, then the old path (--variant tiled:
# conv_dgrad / conv_fwd / conv_wgrad) and the new one (--variant up) side by side, then the
# U-Net steps (Auto = conv_up on GPUs). Binaries come from tools/device_pack.sh
# (.devbin/bin.tgz), the Vulkan loader debs from .gl/, as for tools/device_run.sh.
# Usage on the device: bash tools/device_upconv.sh   (about 2 minutes on an H100)
set -u
. "$(dirname "$0")/device_env.sh"
nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv,noheader
$B/wunet devices | head -3
echo "== tests on the GPU"
for t in $B/test-conv_up $B/test-conv; do
    echo "-- $t: $(timeout 200 "$t" --test-threads 2 2>&1 | grep -E '^test result|panicked' | tr '\n' ' ')"
done
echo "== up-convolution, old (tiled) vs conv_up (up)"
b() { echo "-- wunet bench $*"; $B/wunet bench "$@" --runs 30 | tail -2 | tr '\n' ' '; echo; }
for bw in "" --backward; do
    for v in tiled up; do
        b conv-transpose --in 1x128x128x128 --out-channels 64 --kernel 2 --stride 2 --pad 0 --variant $v $bw
    done
    for v in tiled up; do
        b conv-transpose --in 1x64x32x32x32 --out-channels 32 --kernel 2 --stride 2 --pad 0 --variant $v $bw
    done
done
echo "== U-Net training steps (Auto: conv_up)"
$B/wunet bench unet2d --runs 20 | tail -1
$B/wunet bench unet3d --runs 10 | tail -1
