#!/usr/bin/env bash
# Issue 13's ISBI target on a lent GPU (validation V_rand error <= 0.06 on the GPU recipe):
# configs/isbi_h100.toml (the paper's U-Net, border-weighted CE, SGD 0.99, elastic), trained
# with best.safetensors picked by the challenge's Rand error (val_metric = isbi_rand_error),
# then `wunet eval --split val` (sections 27-29) of best and last, without and with flip TTA:
# the challenge's scores (isbi_*) beside this crate's argmax ones. About 4 minutes on an H200
# at 3000 steps (17.8 steps/s measured 2026-11-26). Can follow tools/device_tiles.sh in one call.
#
# Here, before the call: tools/device_pack.sh (the CLI is enough), then
#   mkdir -p .devdata && cp -r ../shared/data/isbi2012 .devdata/
# and carry .gl, .devbin and .devdata. ISBI_STEPS / ISBI_TIMEOUT size the run. Output:
# $OUT/isbi.log and $OUT/isbi/ (log.csv, curves.png, overlay.png, config.toml).
set -u
. "$(dirname "$0")/device_env.sh"
DATA=${DATA:-.devdata}
steps=${ISBI_STEPS:-3000}
tmo=${ISBI_TIMEOUT:-260}
run=/tmp/isbi-gpu
{
date -u; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
echo "== ISBI 2012, configs/isbi_h100.toml, $steps steps, best by isbi_rand_error"
rm -rf "$run"
timeout "$tmo" $B/wunet train --config configs/isbi_h100.toml --data "$DATA/isbi2012" --out "$run" \
    --steps "$steps" --val-every 250 --checkpoint-every 500 --log-every 100 >/tmp/isbi-train.log 2>&1
echo "train rc $?"
tr '\r' '\n' </tmp/isbi-train.log | grep -vE "^\s*$" | grep -vE "^\[|it/s" | tail -30
for ck in best last; do
    for tta in false true; do
        echo "-- wunet eval $ck.safetensors --split val --tta $tta"
        timeout 60 $B/wunet eval --checkpoint "$run/$ck.safetensors" --data "$DATA/isbi2012" \
            --split val --tta $tta 2>/dev/null
    done
done
mkdir -p "$OUT/isbi"
cp "$run"/{log.csv,curves.png,overlay.png,config.toml} "$OUT/isbi/" 2>/dev/null
date -u
} 2>&1 | tee "$OUT/isbi.log"
