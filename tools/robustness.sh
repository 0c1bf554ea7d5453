#!/usr/bin/env bash
# Robustness table of a checkpoint (issue 13, part 2): `wunet eval` on the
# validation split, untransformed and under each perturbation of
# `wunet eval --perturb` (applied to the raw images before normalisation),
# with the foreground Dice and its loss against the untransformed images.
#
#   tools/robustness.sh CHECKPOINT DATA [OUT_DIR]
#
# Writes OUT_DIR/robustness.md (a Markdown table) and one eval log per row
# (default OUT_DIR: the checkpoint's folder). Env: WUNET (binary, default
# target/release/wunet), SPLIT (default val), MAX_LOSS (default 0.05: rows
# losing more are marked "no"), EVAL_FLAGS (more `wunet eval` flags for
# every row, e.g. "--tta false").
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 CHECKPOINT DATA [OUT_DIR]" >&2
  exit 2
fi
ck=$1
data=$2
out=${3:-$(dirname "$ck")}
wunet=${WUNET:-target/release/wunet}
split=${SPLIT:-val}
max_loss=${MAX_LOSS:-0.05}
[ -f "$ck" ] || { echo "error: checkpoint $ck: no such file" >&2; exit 2; }
[ -e "$data" ] || { echo "error: data $data: no such file or folder" >&2; exit 2; }
[ -x "$wunet" ] || { echo "error: WUNET=$wunet is not an executable (cargo build --release)" >&2; exit 2; }
mkdir -p "$out"

# name | perturbation ("" = none)
rows=(
  "untransformed|"
  "gamma 0.5|gamma:0.5"
  "gamma 2|gamma:2"
  "intensity x0.25|gain:0.25"
  "intensity x4|gain:4"
  "offset +0.5 max|offset:0.5"
  "Gaussian noise sigma 0.05 range|noise:0.05"
  "zoom 0.75x|zoom:0.75"
  "zoom 1.33x|zoom:1.33"
  "background set to 0|background0"
)

# the foreground Dice of one eval log (mean_dice: the foreground classes)
dice_of() { sed -n 's/^mean_dice: \([0-9.]*\).*/\1/p' "$1" | head -n 1; }

table="$out/robustness.md"
{
  echo "| images | perturbation | mean foreground Dice | loss vs untransformed | <= $max_loss |"
  echo "| --- | --- | --- | --- | --- |"
} > "$table.tmp"
base=""
for row in "${rows[@]}"; do
  name=${row%%|*}
  p=${row#*|}
  tag=${p:-none}
  log="$out/eval-${tag//[:.]/_}.log"
  args=(eval --checkpoint "$ck" --data "$data" --split "$split")
  [ -n "$p" ] && args+=(--perturb "$p")
  # shellcheck disable=SC2206 # EVAL_FLAGS is split into flags on purpose
  [ -n "${EVAL_FLAGS:-}" ] && args+=(${EVAL_FLAGS})
  echo "== $name: $wunet ${args[*]}" >&2
  "$wunet" "${args[@]}" > "$log" 2> "$log.stderr"
  d=$(dice_of "$log")
  [ -n "$d" ] || { echo "error: no mean_dice in $log" >&2; exit 1; }
  if [ -z "$base" ]; then
    base=$d
    echo "| $name | - | $d | - | - |" >> "$table.tmp"
  else
    loss=$(awk -v a="$base" -v b="$d" 'BEGIN { printf "%.4f", a - b }')
    ok=$(awk -v l="$loss" -v m="$max_loss" 'BEGIN { print (l <= m) ? "yes" : "no" }')
    echo "| $name | \`--perturb $p\` | $d | $loss | $ok |" >> "$table.tmp"
  fi
done
mv "$table.tmp" "$table"
cat "$table"
