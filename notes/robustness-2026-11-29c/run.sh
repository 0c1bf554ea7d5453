#!/usr/bin/env bash
# usage: run.sh NAME BIN [train flags...]
set -u
name=$1; bin=$2; shift 2
out=/work/exp/runs/$name
mkdir -p $out
cd /work/main
t0=$(date +%s)
$bin train --data ../shared/data/nuclei2d/nih3t3 "$@" --out $out > $out/train.log 2>&1
t1=$(date +%s)
WUNET=$bin bash tools/robustness.sh $out/best.safetensors ../shared/data/nuclei2d/nih3t3 $out > $out/rob.stdout 2> $out/rob.stderr
t2=$(date +%s)
echo "$name train $((t1-t0))s rob $((t2-t1))s flags: $*" >> /work/exp/times.txt
grep -h "best:" $out/train.log >> /work/exp/times.txt
cat $out/robustness.md >> /work/exp/times.txt
