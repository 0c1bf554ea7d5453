#!/usr/bin/env bash
# The direct matrix-unit conv kernels (conv_coop_direct, conv_coop_direct_wgrad) on a lent
# GPU, one sitting of about 5 minutes: correctness first (the coop tests with the direct
# kernels on every tile, the self-test line of `wunet devices`), then the conv sizes with the
# im2col kernels (coop-im2col) and the direct ones (coop-direct) side by side in one call,
# then the U-Net steps in mixed precision with WUNET_COOP_DIRECT=0 (im2col), =fwd (direct
# forward and grad input, im2col weight gradient) and =1 (default: all direct, profiled).
# Binaries come from .devbin/bin.tgz (tools/device_pack.sh conv_coop conv mixed), the
# environment from device_env.sh as for device_mixed.sh. Output: $OUT/direct.log.
set -u
. "$(dirname "$0")/device_env.sh"
t() { local s=$1; shift; timeout "$s" "$@" 2>&1; }
{
date -u; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
$B/wunet devices | grep -E "^[^ ]|cooperative" | head -6
echo "== 1. correctness on the GPU"
WUNET_REQUIRE_COOP=1 t 240 $B/test-conv_coop --test-threads 1 | grep -E "^test |panicked|result|FAIL"
for tb in conv mixed; do
    [ -x $B/test-$tb ] && echo "-- $tb: $(t 120 $B/test-$tb --test-threads 4 | grep -E '^test result|panicked|FAILED' | tr '\n' ' ')"
done
echo "== 2. conv sizes, mixed precision (GPU timestamps; fwd+bwd = 3 passes of the dense formula)"
b() { echo "-- wunet bench $*"; t 90 $B/wunet bench "$@" --runs 30 | grep -E "variant|median_ms|gflops|skip"; }
for shape in "1x64x256x256 --out-channels 64" "8x256x64x64 --out-channels 256" \
             "1x32x64x64x64 --out-channels 32" "1x96x64x64x64 --out-channels 32" \
             "2x32x256x256 --out-channels 32"; do
    b conv --in $shape --kernel 3 --pad 1 --variant coop-im2col,coop-direct --precision mixed
    b conv --in $shape --kernel 3 --pad 1 --variant coop-im2col,coop-direct --precision mixed --backward
done
echo "== 3. U-Net training steps, mixed precision"
for m in unet2d unet3d; do
    for d in 0 fwd; do
        echo "-- WUNET_COOP_DIRECT=$d wunet bench $m --precision mixed"
        WUNET_COOP_DIRECT=$d t 120 $B/wunet bench $m --runs 20 --precision mixed | grep -E "precision|median|loss"
    done
    echo "-- WUNET_COOP_DIRECT=1 wunet bench $m --precision mixed --profile"
    WUNET_COOP_DIRECT=1 t 120 $B/wunet bench $m --runs 20 --precision mixed --profile | grep -vE "^adapter" | head -45
done
date -u
} 2>&1 | tee "$OUT/direct.log"
