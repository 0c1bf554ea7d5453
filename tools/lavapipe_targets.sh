#!/usr/bin/env bash
# Issue 12's lavapipe targets in yardstick units, on an idle machine: the calib
# yardstick (reg8x8_wg8x8, n = 1024) timed before and after every figure.
# Usage: bash tools/lavapipe_targets.sh > notes/lavapipe-DATE-targets.log 2>&1
set -u
cd "$(dirname "$0")/.."
W=${WUNET:-target/release/wunet}
yard() {
  echo "--- yardstick $(date +%T)"
  CARGO_TARGET_DIR=target/calib cargo run -q --release \
    --manifest-path ../shared/calib/Cargo.toml -- 1024 reg8x8_wg8x8 2>&1 | grep -i gflop
}
run() { echo "=== $* ($(date +%T))"; "$W" "$@" 2>&1; }
echo "host: $(nproc) CPUs, load: $(cut -d' ' -f1-3 /proc/loadavg)"
yard
run bench conv --in 1x64x256x256 --runs 3
yard
run bench conv --in 1x64x256x256 --backward --runs 3
yard
run bench conv --in 1x32x32x32x32 --out-channels 32 --runs 3
run bench conv --in 1x32x32x32x32 --out-channels 32 --backward --runs 3
yard
run bench conv --in 1x32x64x64x64 --out-channels 32 --runs 3
yard
run bench conv --in 1x32x64x64x64 --out-channels 32 --backward --runs 2
yard
run bench unet2d --input 64x64 --runs 3
yard
run bench unet3d --input 64x64x64 --runs 1
yard
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
