#!/usr/bin/env bash
# usage: tta_rows.sh RUN PERTURB... : rows with --tta (none = untransformed)
cd /work/main
r=$1; shift
for p in "$@"; do
  args=(eval --checkpoint /work/exp/runs/$r/best.safetensors --data ../shared/data/nuclei2d/nih3t3 --split val --tta)
  [ "$p" != none ] && args+=(--perturb $p)
  t0=$(date +%s)
  d=$(/work/exp/bin/wunet-s14b "${args[@]}" 2>/dev/null | sed -n 's/^mean_dice: \([0-9.]*\).*/\1/p' | head -1)
  echo "$r tta $p $d $(( $(date +%s)-t0 ))s" >> /work/exp/tta.txt
done
