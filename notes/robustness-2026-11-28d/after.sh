#!/usr/bin/env bash
while pgrep -f "run.sh rg-d3-seed2" >/dev/null; do sleep 10; done
cd /work/main
out=/work/exp/runs/z-dicece-n03
mkdir -p $out
/work/exp/wunet train --data ../shared/data/nuclei2d/nih3t3 --loss dicece --noise-prob 0.3 --noise-variance 0,0.5 --steps 400 --seed 1 --out $out > $out/train.log 2>&1
for i in 16 17; do /work/exp/wunet predict --checkpoint $out/best.safetensors --input ../shared/data/nuclei2d/nih3t3/image-$i.png --output /work/exp/pred/z-$i.png > /dev/null 2>&1; done
cd /work/exp/py && python3 fpfn.py /work/exp/pred/z > $out/fpfn.txt
