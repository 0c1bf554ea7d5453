#!/usr/bin/env bash
# Matrix-unit (cooperative matrix) conv kernels on a lent GPU: correctness first, then
# timings of the coop kernels next to the tiled f32 kernels. Binaries come from
# .devbin/bin.tgz (tools/device_pack.sh, built on the build machine). Usage on the device:
#   bash tools/device_coop.sh          # tests + forward/backward benches
#   bash tools/device_coop.sh tests    # tests only
set -u
. "$(dirname "$0")/device_env.sh"
export WUNET_REQUIRE_COOP=1
nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv,noheader
$B/wunet devices | grep -E "^[^ ]|cooperative|subgroup|shader_f16|workgroup_storage"
echo "== coop layout probe (run first: pins down coopLoad/coopLoadT/coopStore semantics)"
timeout 120 $B/test-conv_coop coop_matrix_layouts_on_device --exact --nocapture 2>&1 | grep -vE "^$|^running"
echo "== coop tests (real and emulated kernels against the CPU reference)"
timeout 300 $B/test-conv_coop --test-threads 1 --nocapture 2>&1 | grep -E "^test |panicked|worst|skip|cooperative|result"
[ "${1:-}" = tests ] && exit 0
echo "== coop vs tiled conv timings (coop: f16 operands, f32 accumulation; precision mixed = F16 tensors)"
b() { echo "-- wunet bench $*"; $B/wunet bench "$@" --runs 30 | grep -E "^conv|median_ms|gflops|skip"; }
for shape in "1x64x256x256 --out-channels 64" "8x256x64x64 --out-channels 256" "1x32x64x64x64 --out-channels 32" "2x32x256x256 --out-channels 32"; do
    b conv --in $shape --kernel 3 --pad 1 --variant tiled --precision f32
    b conv --in $shape --kernel 3 --pad 1 --variant coop --precision mixed,f32
    b conv --in $shape --kernel 3 --pad 1 --variant tiled --precision f32 --backward
    b conv --in $shape --kernel 3 --pad 1 --variant coop --precision mixed --backward
done
b conv-transpose --in 1x128x128x128 --out-channels 64 --kernel 2 --stride 2 --pad 0 --variant coop --precision f32 --backward
