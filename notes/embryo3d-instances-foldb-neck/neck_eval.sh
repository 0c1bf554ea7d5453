#!/usr/bin/env bash
# usage: neck_eval.sh CHECKPOINT [extra eval flags] -> instance lines per neck ratio
ck=$1; shift
cd /work/main
for r in 0 0.3 0.4 0.5 0.6; do
  echo "== neck ratio $r $*"
  ${WUNET:-/work/exp/bin/wunet-s13} eval --checkpoint $ck --data ../shared/data/mouse_embryo_nuclei3d --split val --neck-ratio $r "$@" 2>/dev/null | grep -E "^(dice_1|instance_)"
done
