#!/usr/bin/env bash
# usage: tta_check.sh RUN... : untransformed and noise rows with --tta
cd /work/main
for r in "$@"; do
  ck=/work/exp/runs/$r/best.safetensors
  for p in "" noise:0.05 zoom:0.75; do
    args=(eval --checkpoint $ck --data ../shared/data/nuclei2d/nih3t3 --split val --tta)
    [ -n "$p" ] && args+=(--perturb $p)
    t0=$(date +%s)
    d=$(${WUNET:-target/release/wunet} "${args[@]}" 2>/dev/null | sed -n 's/^mean_dice: \([0-9.]*\).*/\1/p' | head -1)
    echo "$r tta ${p:-none} $d $(( $(date +%s)-t0 ))s" >> /work/exp/tta.txt
  done
done
