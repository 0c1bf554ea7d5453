#!/usr/bin/env bash
# Issue 11, the direct matrix-unit conv forward towards 150 TFLOP/s, one sitting of about 7
# minutes on a lent GPU: correctness first (the coop tests: every tile and every staging of
# conv_coop_direct against the CPU reference on the matrix units), then the adapter's
# ceilings, then a sweep of the direct forward's tiles and stagings at the conv sizes of the
# README (WUNET_COOP_DIRECT_TILE: bm, wmf (4: 64 x 64 per subgroup), wnf, pack = f16-packed
# weights, db = register double buffering; empty = the tile rule's choice), then the U-Net steps in mixed precision with the
# default staging and with the f16-packed one (pack=1), and f32 for the "no slower" check; the
# up-convolution on the FMA-unit kernel (up) and on the matrix units (coop) between them; the
# Winograd f32 kernels beside the tiled f32 one at each conv size (issue 12's GPU figure).
# Then (6.) the tiles chosen by measurement (src/ops/coop/tuned.rs): `wunet tune` measures
# every direct forward of the U-Net steps in mixed precision into a fresh cache, and the
# steps run on the measured tiles beside the rule's (WUNET_TUNE=0). Sections 3 and 5 set
# WUNET_COOP_DIRECT_TILE (empty included), which turns the measurement off.
# Binaries from .devbin/bin.tgz (tools/device_pack.sh conv_coop conv mixed), the environment
# from device_env.sh. Output: $OUT/tiles.log.
set -u
. "$(dirname "$0")/device_env.sh"
t() { local s=$1; shift; timeout "$s" "$@" 2>&1; }
# TILE_SPECS (space-separated; "rule" = the tile rule's choice) shortens section 3 when the
# device time left is short, e.g. TILE_SPECS="rule bm=128,wmf=4 pack=1"
specs=("" pack=1 db=0 pack=1,db=0 bm=32 bm=64 bm=128 wnf=2 wnf=4 bm=128,wmf=4
       bm=128,wmf=4,db=0 bm=128,wmf=4,pack=1 bm=128,wmf=4,wnf=2 bm=64,wmf=4,wnf=2)
if [ -n "${TILE_SPECS:-}" ]; then
    specs=(); for s in $TILE_SPECS; do [ "$s" = rule ] && specs+=("") || specs+=("$s"); done
fi
{
date -u; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
$B/wunet devices | grep -E "^[^ ]|cooperative" | head -6
echo "== 1. correctness on the GPU"
WUNET_REQUIRE_COOP=1 t 200 $B/test-conv_coop --test-threads 2 | grep -E "^test |panicked|result|FAIL"
[ -x $B/test-mixed ] && echo "-- mixed: $(t 120 $B/test-mixed --test-threads 4 | grep -E '^test result|panicked|FAILED' | tr '\n' ' ')"
echo "== 2. ceilings"; t 60 $B/wunet bench peak --runs 10
echo "== 3. direct forward, mixed precision: tiles x stagings (GPU timestamps, dense formula)"
for shape in "8x256x64x64 --out-channels 256" "1x64x256x256 --out-channels 64" \
             "2x32x256x256 --out-channels 32" "1x32x64x64x64 --out-channels 32" \
             "1x96x64x64x64 --out-channels 32"; do
    echo "-- $shape"
    t 30 $B/wunet bench conv --in $shape --kernel 3 --pad 1 --variant tiled --precision f32 --runs 20 | grep -E "median_ms|gflops" | tr '\n' ' '; echo "[tiled f32]"
    # issue 12: Winograd f32 on the GPU (FMA units), against the tiled direct kernel above
    t 40 $B/wunet bench conv --in $shape --kernel 3 --pad 1 --variant winograd2,winograd4 \
        --precision f32 --runs 20 | grep -E "variant|median_ms|gflops" | tr '\n' ' '; echo "[winograd f32]"
    for spec in "${specs[@]}"; do
        r=$(WUNET_COOP_DIRECT_TILE="$spec" t 30 $B/wunet bench conv --in $shape --kernel 3 --pad 1 \
            --variant coop-direct --precision mixed --runs 20 | grep -E "variant|median_ms|gflops|rror" \
            | sed -E 's/.*ran CoopDirect: fwd conv_coop_direct, //; s/, precision mixed\)//' | tr '\n' ' ')
        echo "[$spec] $r"
    done
done
echo "== 4. up-convolution: conv_up (FMA units) vs coop (forward: the direct kernel with phase rows)"
for bw in "" --backward; do
    t 60 $B/wunet bench conv-transpose --in 1x128x128x128 --out-channels 64 --kernel 2 --stride 2 \
        --pad 0 --variant up,coop --precision mixed --runs 30 $bw | grep -E "variant|median_ms|gflops|rror"
    t 60 $B/wunet bench conv-transpose --in 1x64x32x32x32 --out-channels 32 --kernel 2 --stride 2 \
        --pad 0 --variant up,coop --precision mixed --runs 30 $bw | grep -E "variant|median_ms|gflops|rror"
done
echo "== 5. U-Net training steps"
for m in unet2d unet3d; do
    for spec in "" pack=1; do
        echo "-- WUNET_COOP_DIRECT_TILE=$spec wunet bench $m --precision mixed"
        WUNET_COOP_DIRECT_TILE="$spec" t 120 $B/wunet bench $m --runs 20 --precision mixed | grep -E "precision|median|loss"
    done
    echo "-- wunet bench $m --precision f32"
    t 120 $B/wunet bench $m --runs 20 --precision f32 | grep -E "precision|median"
done
echo "== 6. measured tiles (wunet tune, fresh cache) against the rule's (WUNET_TUNE=0)"
export WUNET_CACHE_DIR=$(mktemp -d)
for m in unet2d unet3d; do
    echo "-- wunet tune $m --precision mixed"
    t 150 $B/wunet tune $m --precision mixed | grep -E "coop|measuring"
    echo "-- wunet bench $m --precision mixed (measured tiles)"
    t 120 $B/wunet bench $m --runs 20 --precision mixed | grep -E "median"
    echo "-- WUNET_TUNE=0 wunet bench $m --precision mixed (the rule's tiles)"
    WUNET_TUNE=0 t 120 $B/wunet bench $m --runs 20 --precision mixed | grep -E "median"
done
for shape in "8x256x64x64 --out-channels 256" "1x64x256x256 --out-channels 64"; do
    echo "-- bench conv $shape, measured tile"
    t 30 $B/wunet bench conv --in $shape --kernel 3 --pad 1 --variant coop --precision mixed \
        --runs 20 | grep -E "variant|median_ms|gflops"
done
cat "$WUNET_CACHE_DIR/conv-variants.txt" | grep coop
date -u
} 2>&1 | tee "$OUT/tiles.log"
