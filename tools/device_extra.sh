#!/usr/bin/env bash
# Accuracy runs on a lent GPU, called by `tools/device_run.sh all`.
# DATA: a folder with isbi2012/ and mouse_embryo_nuclei3d/ (default ../shared/data;
# on the device machine a carried copy). ISBI_STEPS / ISBI_TIMEOUT size the runs.
#
# ISBI 2012, the paper's network (configs/isbi_h100.toml), two losses side by
# side on the same GPU: plain cross entropy, and the border-weighted cross
# entropy without the class-balancing term w_c (the balanced default of the
# earlier H200 run predicted membranes too thick: pixel error 0.118).
# Then the 3D U-Net on the mouse embryo nuclei (configs/embryo3d_gpu.toml).
set -u
B=${B:-/tmp/devbin}
DATA=${DATA:-../shared/data}
OUT=${OUT:-/tmp/out}
steps=${ISBI_STEPS:-2400}
tmo=${ISBI_TIMEOUT:-380}
run_isbi() { # name, extra flags...
    local name=$1; shift
    timeout "$tmo" $B/wunet train --config configs/isbi_h100.toml --data "$DATA/isbi2012" \
        --out "/tmp/isbi-$name" --steps "$steps" --val-every 400 --checkpoint-every 400 \
        --log-every 100 "$@" >"/tmp/isbi-$name.log" 2>&1
    echo "== ISBI $name (rc $?)"
    tr '\r' '\n' <"/tmp/isbi-$name.log" | grep -vE "^\s*$" | grep -vE "^\[|it/s" | tail -24
    mkdir -p "$OUT/isbi-$name"
    cp /tmp/isbi-$name/{log.csv,curves.png,overlay.png,config.toml} "$OUT/isbi-$name/" 2>/dev/null
}
run_isbi ce --loss ce &
run_isbi nobal --loss wce --wmap-balance false &
wait
echo "== 3D U-Net, mouse embryo nuclei"
timeout 240 $B/wunet train --config configs/embryo3d_gpu.toml --data "$DATA/mouse_embryo_nuclei3d" \
    --out /tmp/embryo3d 2>&1 | tr '\r' '\n' | grep -vE "^\s*$" | grep -vE "^\[|it/s" | tail -20
mkdir -p "$OUT/embryo3d"
cp /tmp/embryo3d/{log.csv,curves.png,overlay.png,config.toml} "$OUT/embryo3d/" 2>/dev/null
