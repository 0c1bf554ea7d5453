#!/usr/bin/env bash
# Block-wise Zarr prediction, measured: voxels/s and peak resident memory at
# two volume sizes 8x apart (same --max-memory), and throughput of N = 1 and
# N = 2 worker processes, each given one CPU thread of lavapipe
# (LP_NUM_THREADS=1) to stand for one adapter per worker. The calib
# yardstick (../shared/calib) runs before and after, on the same machine.
#
#   bash tools/zarr_bench.sh [OUT_DIR]      # log: OUT_DIR/zarr_bench.log
set -euo pipefail
out=${1:-/tmp/wunet-zarr-bench}
rm -rf "$out" && mkdir -p "$out"
log="$out/zarr_bench.log"
cargo build --release --quiet --bin wunet --example zarr_volume
w=target/release/wunet
mk=target/release/examples/zarr_volume
yardstick() {
  if [ -f ../shared/calib/Cargo.toml ]; then
    CARGO_TARGET_DIR=target/calib cargo run --quiet --release --manifest-path ../shared/calib/Cargo.toml -- 1024 reg8x8_wg8x8 2>&1 | tail -1
  else
    echo "yardstick: ../shared/calib absent"
  fi
}
{
  date -u; uname -n; nproc
  echo "yardstick before: $(yardstick)"
  # a small 3D U-Net (base 4, depth 2, BN, same padding), 2 steps: speed, not accuracy
  WUNET_TUNE=0 $w train --model unet3d --synthetic-images 2 --synthetic-size 16x64x64 --base 4 --depth 2 \
    --padding same --norm batch --patch 16x64x64 --batch 1 --tile 16x64x64 --steps 2 --out "$out/run" >/dev/null
  ck="$out/run/last.safetensors"
  $mk --synthetic 16x96x96 --chunk 16x64x64 --out "$out/small.zarr"
  $mk --synthetic 32x192x192 --chunk 16x64x64 --out "$out/large.zarr"
  for v in small large; do
    echo "== $v, --max-memory 12MiB"
    WUNET_TUNE=0 /usr/bin/env time -f "wall %e s" $w predict --checkpoint "$ck" --input "$out/$v.zarr" \
      --output "$out/$v-seg.zarr" --max-memory 12MiB 2>&1 | grep -v "^predict: chunk"
  done
  for n in 1 2; do
    echo "== N = $n workers, LP_NUM_THREADS=1 each, large volume"
    rm -rf "$out/n$n.zarr"
    t0=$(date +%s.%N)
    for k in $(seq 1 $n); do
      LP_NUM_THREADS=1 WUNET_TUNE=0 $w predict --checkpoint "$ck" --input "$out/large.zarr" \
        --output "$out/n$n.zarr" --chunk 16x64x64 --part "$k/$n" > "$out/n$n-$k.txt" 2>&1 &
    done
    wait
    t1=$(date +%s.%N)
    grep -h "part" "$out"/n$n-*.txt | grep -v "^predict: chunk"
    python3 -c "print('N = $n: %.0f voxels/s over the whole volume (wall %.1f s)' % (32*192*192/($t1-$t0), $t1-$t0))"
  done
  $w predict --status "$out/n2.zarr"
  echo "yardstick after: $(yardstick)"
} 2>&1 | tee "$log"
