#!/usr/bin/env bash
# after fold B: the default NIH3T3 command with dice_background = false, seed 1
while [ ! -f /work/exp/runs/foldb/DONE ]; do sleep 20; done
cd /work/main
W=/work/exp/bin/wunet-s16b
out=/work/exp/runs/s16-nobg-s1
cat > /work/exp/nobg.toml <<'T'
dice_background = false
T
{ time $W train --data ../shared/data/nuclei2d/nih3t3 --steps 400 --seed 1 --config /work/exp/nobg.toml --out $out ; } > $out.train.txt 2>&1
$W eval --checkpoint $out/best.safetensors --data ../shared/data/nuclei2d/nih3t3 --split val > $out.eval.txt 2>&1
echo done > $out.DONE
