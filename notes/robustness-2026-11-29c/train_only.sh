#!/usr/bin/env bash
# usage: train_only.sh NAME BIN [train flags...]
set -u
name=$1; bin=$2; shift 2
out=/work/exp/runs/$name
mkdir -p $out
cd /work/main
t0=$(date +%s)
$bin train --data ../shared/data/nuclei2d/nih3t3 "$@" --out $out > $out/train.log 2>&1
echo "$name train $(( $(date +%s)-t0 ))s flags: $*" >> /work/exp/times.txt
grep -h "best:" $out/train.log >> /work/exp/times.txt
