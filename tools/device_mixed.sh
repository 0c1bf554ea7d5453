#!/usr/bin/env bash
# Issue 11 on a lent GPU, one sitting: correctness first (the matrix-unit layout probe,
# the coop / up-conv / mixed-precision tests and the JAX goldens on the GPU), then the
# adapter's ceilings, the conv sizes (tiled f32 vs matrix units in mixed precision; the
# up-convolution old vs new), the U-Net 2D and 3D training steps in f32 and mixed with
# GPU-timestamp profiles, and PyTorch (f32 TF32 off, TF32, AMP) at the same sizes.
# Binaries come from .devbin/bin.tgz (tools/device_pack.sh), the Vulkan loader from .gl/.
# Everything is printed and kept in $OUT/mixed.log.
set -u
. "$(dirname "$0")/device_env.sh"
t() { local s=$1; shift; timeout "$s" "$@" 2>&1; }
{
date -u; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
$B/wunet devices | grep -A40 -i "nvidia h\|nvidia a\|nvidia g" | grep -E "^[^ ]|backend|shader_f16|subgroup|cooperative" | head -8
echo "== 1. correctness on the GPU"
WUNET_REQUIRE_COOP=1 t 120 $B/test-conv_coop coop_matrix_layouts_on_device --exact --nocapture | grep -vE "^$|^running"
WUNET_REQUIRE_COOP=1 t 240 $B/test-conv_coop --test-threads 1 | grep -E "^test |panicked|result"
for tb in conv_up amp mixed mixed_norm_loss conv op_table unet_golden; do
    [ -x $B/test-$tb ] && echo "-- $tb: $(t 180 $B/test-$tb --test-threads 4 | grep -E '^test result|panicked|FAILED' | tr '\n' ' ')"
done
[ -x $B/golden ] && WUNET_GOLDEN_PRECISION=both WUNET_GOLDEN_DIR=tests/golden t 240 $B/golden | grep -E "^FAIL|^golden" | tail -6
echo "== 2. ceilings"; t 90 $B/wunet bench peak --runs 10
echo "== 3. conv sizes (GPU timestamps; GFLOP/s = 2 x MACs of the dense formula, fwd+bwd = 3 passes)"
b() { echo "-- wunet bench $*"; t 60 $B/wunet bench "$@" --runs 30 | grep -E "variant|median_ms|gflops|skip"; }
for shape in "1x64x256x256 --out-channels 64" "8x256x64x64 --out-channels 256" "1x32x64x64x64 --out-channels 32" "1x96x64x64x64 --out-channels 32" "2x32x256x256 --out-channels 32"; do
    b conv --in $shape --kernel 3 --pad 1 --variant tiled --precision f32
    for d in 0 1; do
        echo "   (WUNET_COOP_DIRECT=$d)"
        WUNET_COOP_DIRECT=$d b conv --in $shape --kernel 3 --pad 1 --variant coop --precision mixed
        WUNET_COOP_DIRECT=$d b conv --in $shape --kernel 3 --pad 1 --variant coop --precision mixed --backward
    done
done
b conv-transpose --in 1x128x128x128 --out-channels 64 --kernel 2 --stride 2 --pad 0 --variant tiled,up --precision f32,mixed
b conv-transpose --in 1x128x128x128 --out-channels 64 --kernel 2 --stride 2 --pad 0 --variant tiled,up --precision f32,mixed --backward
echo "== 4. U-Net training steps"
for m in unet2d unet3d; do
    echo "-- wunet bench $m --precision f32"
    t 120 $B/wunet bench $m --runs 20 --precision f32 | grep -E "precision|dispatches|median"
    echo "-- wunet bench $m --precision mixed (WUNET_COOP_DIRECT=0: the first coop kernels)"
    WUNET_COOP_DIRECT=0 t 120 $B/wunet bench $m --runs 20 --precision mixed | grep -E "precision|dispatches|median|loss scale"
    echo "-- wunet bench $m --precision mixed (default)"
    t 120 $B/wunet bench $m --runs 20 --precision mixed --profile | grep -vE "^adapter" | head -45
done
echo "== 5. PyTorch on the same GPU"
t 240 python3 tools/torch_unet_bench.py --runs 20 | grep -v "^json"
date -u
} 2>&1 | tee "$OUT/mixed.log"
