#!/usr/bin/env bash
# NIH3T3 val, objects resized by --perturb zoom:Z, evaluated at scale 1 and with --diameter (84.74871 * Z)
cd /work/main
W=/work/exp/bin/wunet-s16b
ck=/work/exp/runs/s16-default-s1/best-diameter.safetensors
for z in 0.5 1.5; do
  d=$(python3 -c "print(round(84.74871*$z, 2))")
  echo "== zoom $z, no resize"; $W eval --checkpoint $ck --data ../shared/data/nuclei2d/nih3t3 --split val --perturb zoom:$z 2>/dev/null | grep -E "^(dice_1|mean_dice)"
  echo "== zoom $z, --diameter $d"; $W eval --checkpoint $ck --data ../shared/data/nuclei2d/nih3t3 --split val --perturb zoom:$z --diameter $d 2>&1 | grep -E "^(dice_1|mean_dice)|resize:"
done
