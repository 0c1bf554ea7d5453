#!/usr/bin/env bash
# Issue 12's lavapipe targets in yardstick units, on an idle machine: the calib
# yardstick (reg8x8_wg8x8, n = 1024) timed before and after every figure.
# A fresh tuning cache, filled first (`wunet tune` for the U-Net steps, three untimed
# passes for the conv shapes), so every figure runs the variants measured in this run.
# Usage: bash tools/lavapipe_targets.sh > notes/lavapipe-DATE-targets.log 2>&1
set -u
cd "$(dirname "$0")/.."
W=${WUNET:-target/release/wunet}
export WUNET_CACHE_DIR=${WUNET_CACHE_DIR:-$(mktemp -d)}
yard() {
  echo "--- yardstick $(date +%T)"
  CARGO_TARGET_DIR=target/calib cargo run -q --release \
    --manifest-path ../shared/calib/Cargo.toml -- 1024 reg8x8_wg8x8 2>&1 | grep -i gflop
}
run() { echo "=== $* ($(date +%T))"; "$W" "$@" 2>&1; }
CONVS=(
  "--in 1x64x256x256"
  "--in 1x32x32x32x32 --out-channels 32"
  "--in 1x32x64x64x64 --out-channels 32"
)
echo "host: $(nproc) CPUs, load: $(cut -d' ' -f1-3 /proc/loadavg); tuning cache $WUNET_CACHE_DIR"
echo "### tuning (untimed)"
"$W" tune unet2d --input 64x64 2>&1 | tail -2
"$W" tune unet3d --input 64x64x64 2>&1 | tail -2
for c in "${CONVS[@]}"; do
  for _ in 1 2 3; do "$W" bench conv $c --backward --runs 1 > /dev/null 2>&1; done
done
echo "### figures"
yard
for c in "${CONVS[@]}"; do
  run bench conv $c --runs 3
  yard
  run bench conv $c --backward --runs 3
  yard
done
# The 2D step is short (~0.5 s) and this box's speed drifts by 10-20% between
# seconds, so it is measured three times, each beside its own yardstick.
for _ in 1 2 3; do
  run bench unet2d --input 64x64 --runs 7
  yard
done
run bench unet3d --input 64x64x64 --runs 1
yard
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
