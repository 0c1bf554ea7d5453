#!/usr/bin/env bash
# Copy the run folders' logs (not the checkpoints) from /work/exp/runs into
# this folder (or OUT=folder): collect.sh NAME...
set -eu
here=${OUT:-$(dirname "$0")}
for n in "$@"; do
  src=/work/exp/runs/$n
  mkdir -p "$here/$n"
  cp "$src"/train.log "$src"/config.toml "$src"/robustness.md "$here/$n/" 2>/dev/null || true
  cp "$src"/eval-*.log "$here/$n/" 2>/dev/null || true
done
