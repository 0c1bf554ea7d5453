#!/usr/bin/env bash
# Issue 13's ISBI target on a lent GPU (validation V_rand error <= 0.06 on the GPU recipe).
# Two recipes train at once on the one GPU (the batch-norm ones are small and launch-bound,
# so they cost the paper's run little), each with best.safetensors picked by the challenge's
# Rand error (val_metric = isbi_rand_error):
#   paper  configs/isbi_h100.toml: the paper's U-Net (base 64, valid padding, no
#          normalisation), border-weighted CE, SGD 0.99, 572x572 tiles, elastic
#   bn32   configs/isbi_lavapipe.toml --base 32: the same loss and augmentation with batch
#          norm, Adam and 128x128 patches x 4, the recipe that reached 0.0625 at base 16 on
#          lavapipe (2026-11-30), here at twice the width and more steps
#   bn64   the same at base 64 (the paper's width)
# then `wunet eval --split val` (sections 27-29) of each best and last, without and with
# flip TTA: the challenge's scores (isbi_*) beside this crate's argmax ones, and the three
# best checkpoints as one ensemble (their probabilities averaged). The paper run
# is the long one: about 3 minutes at 3000 steps on an H200 (17.8 steps/s measured
# 2026-11-26) plus validations. Run it in its own `run` call after tools/device_tiles.sh.
#
# Here, before the call: tools/device_pack.sh (the CLI is enough), then
#   mkdir -p .devdata && cp -r ../shared/data/isbi2012 .devdata/
# and carry .gl, .devbin and .devdata. ISBI_STEPS (paper), ISBI_BN_STEPS and ISBI_TIMEOUT
# size the runs. Output: $OUT/isbi.log and $OUT/isbi-<recipe>/ (log.csv, curves.png,
# overlay.png, config.toml, train.txt).
set -u
. "$(dirname "$0")/device_env.sh"
DATA=${DATA:-.devdata}
steps=${ISBI_STEPS:-3000}
bn_steps=${ISBI_BN_STEPS:-6000}
tmo=${ISBI_TIMEOUT:-300}
train() { # name, steps, val-every, config and flags...
    local name=$1 n=$2 every=$3; shift 3
    rm -rf "/tmp/isbi-$name"
    timeout "$tmo" $B/wunet train "$@" --data "$DATA/isbi2012" --out "/tmp/isbi-$name" \
        --steps "$n" --val-every "$every" --checkpoint-every "$every" --log-every 100 \
        >"/tmp/isbi-$name.txt" 2>&1
    echo "$name: train rc $?" >>/tmp/isbi-rc.txt
}
{
date -u; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
echo "== ISBI 2012: paper ($steps steps), bn32 and bn64 ($bn_steps steps), best by isbi_rand_error"
rm -f /tmp/isbi-rc.txt
train paper "$steps" 250 --config configs/isbi_h100.toml &
train bn32 "$bn_steps" 500 --config configs/isbi_lavapipe.toml --base 32 &
train bn64 "$bn_steps" 500 --config configs/isbi_lavapipe.toml --base 64 &
wait
cat /tmp/isbi-rc.txt
for name in paper bn32 bn64; do
    run=/tmp/isbi-$name
    echo "==== $name"
    tr '\r' '\n' <"$run.txt" | grep -vE "^\s*$" | grep -vE "^\[|it/s" | tail -25
    for ck in best last; do
        for tta in false true; do
            echo "-- $name: wunet eval $ck.safetensors --split val --tta $tta"
            timeout 60 $B/wunet eval --checkpoint "$run/$ck.safetensors" --data "$DATA/isbi2012" \
                --split val --tta $tta 2>/dev/null | grep -E "^(isbi_|pixel_error|rand_error|mean_dice)"
        done
    done
    mkdir -p "$OUT/isbi-$name"
    cp "$run"/{log.csv,curves.png,overlay.png,config.toml} "$OUT/isbi-$name/" 2>/dev/null
    cp "$run.txt" "$OUT/isbi-$name/train.txt"
done
# the three best checkpoints as one ensemble (the same held-out sections 27-29)
for tta in false true; do
    echo "-- ensemble paper+bn32+bn64 (best): wunet eval --split val --tta $tta"
    timeout 120 $B/wunet eval --checkpoint /tmp/isbi-{paper,bn32,bn64}/best.safetensors \
        --data "$DATA/isbi2012" --split val --tta $tta 2>/dev/null |
        grep -E "^(isbi_|pixel_error|rand_error|mean_dice)"
done
date -u
} 2>&1 | tee "$OUT/isbi.log"
