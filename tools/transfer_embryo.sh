#!/usr/bin/env bash
# Transfer to another microscope (issue 13): a 2D nuclei checkpoint (e.g. trained on NIH3T3,
# Hoechst, widefield, 2D) scored on the mouse embryo stack of ../shared (H2B-mRFP1, 3D
# fluorescence, 51 x 120 x 122, 8 nuclei about 15 px across) without any training on it:
#   * its maximum-intensity projection along z (one 120 x 122 image, mask = the projected
#     3D mask) — the 2D view of a 3D sample;
#   * its 51 z sections one by one (`wunet eval` scores a volume section by section with a
#     2D model; sections above and below the nuclei are empty, and a section's blur of a
#     nucleus lying in the next sections is background in the 3D ground truth), each
#     normalised on its own (as training normalised each 2D image) and, with
#     `--norm-scope stack`, the stack as a whole (empty sections stay dark).
# Each as it comes and resized by `--diameter` (the checkpoint's training-object diameter
# over the embryo's, 16.9 px: the median diameter of the nuclei's largest sections, as
# `wunet train --data ../shared/data/mouse_embryo_nuclei3d --model unet3d --val-fraction 0.01` prints it).
#
#   tools/transfer_embryo.sh CHECKPOINT [OUT_DIR]
#
# Writes OUT_DIR/transfer.md (foreground Dice, pixel error) and one eval log per row. Needs
# python3 with numpy (the projection). Env: WUNET (default target/release/wunet), DATA
# (default ../shared/data/mouse_embryo_nuclei3d), DIAMETER (default 16.9), EVAL_FLAGS.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 CHECKPOINT [OUT_DIR]" >&2; exit 2; }
ck=$1
out=${2:-$(dirname "$ck")/transfer}
wunet=${WUNET:-target/release/wunet}
data=${DATA:-../shared/data/mouse_embryo_nuclei3d}
diam=${DIAMETER:-16.9}
[ -f "$ck" ] || { echo "error: checkpoint $ck: no such file" >&2; exit 2; }
[ -f "$data/stage08_image.npy" ] || { echo "skip: $data/stage08_image.npy not found (the shared data is not here)" >&2; exit 0; }
[ -x "$wunet" ] || { echo "error: WUNET=$wunet is not an executable (cargo build --release)" >&2; exit 2; }
mkdir -p "$out/mip"
python3 - "$data" "$out/mip" <<'PY'
import sys, numpy as np
src, dst = sys.argv[1], sys.argv[2]
np.save(f"{dst}/embryo_image.npy", np.load(f"{src}/stage08_image.npy").max(0)[None])
np.save(f"{dst}/embryo_mask.npy", np.load(f"{src}/stage08_mask.npy").max(0)[None])
PY
row() { # name, data, flags...
    local name=$1 d=$2; shift 2
    local log="$out/$(printf %s "$name" | tr -cs 'a-zA-Z0-9.' '_').txt"
    # the embryo masks store nucleus as 1 (the NIH3T3 masks as 255)
    "$wunet" eval --checkpoint "$ck" --data "$d" --split all --class-values 0,1 "$@" \
        ${EVAL_FLAGS:-} >"$log" 2>"$log.stderr"
    printf '| %s | %s | %s |\n' "$name" "$(grep -E '^dice_1:' "$log" | cut -d' ' -f2)" \
        "$(grep -E '^pixel_error:' "$log" | cut -d' ' -f2)"
}
{
echo "| embryo image | foreground Dice | pixel error |"
echo "| --- | --- | --- |"
row "projection" "$out/mip"
row "projection, --diameter $diam" "$out/mip" --diameter "$diam"
row "51 sections" "$data"
row "51 sections, --diameter $diam" "$data" --diameter "$diam"
row "51 sections, --norm-scope stack" "$data" --norm-scope stack
row "51 sections, --norm-scope stack --diameter $diam" "$data" --norm-scope stack --diameter "$diam"
} | tee "$out/transfer.md"
