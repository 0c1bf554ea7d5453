#!/usr/bin/env bash
# fold B of configs/embryo3d_instances.toml (neck_ratio 0.5), seeds 0 and 1, then eval per neck ratio
cd /work/main
W=/work/exp/bin/wunet-s16b
for s in 0 1; do
  out=/work/exp/runs/foldb/b-s$s
  { time $W train --config configs/embryo3d_instances.toml --val-part first --val-fraction 0.418 --patch 16x64x64 --seed $s --out $out ; } > $out.train.txt 2>&1
  WUNET=$W bash /work/exp/neck_eval.sh $out/best.safetensors > $out.eval-neck.txt 2>&1
done
echo done > /work/exp/runs/foldb/DONE
