#!/usr/bin/env bash
cd /work/main
B=/work/exp/wunet-en
out=/work/exp/runs/en-verify
t0=$(date +%s)
WUNET=$B bash tools/robustness.sh $out/best.safetensors ../shared/data/nuclei2d/nih3t3 $out > $out/rob.stdout 2> $out/rob.stderr
echo "en-verify rob $(( $(date +%s)-t0 ))s" >> /work/exp/times.txt
cd /work/exp && ./run.sh en-seed3 $B --config /work/main/configs/nih3t3_robust.toml --normalize equalize-normal --steps 400 --seed 3
