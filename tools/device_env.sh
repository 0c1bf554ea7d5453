#!/usr/bin/env bash
# Sourced by the tools/device_*.sh scripts on a lent GPU machine (no Rust there):
# unpacks the Vulkan loader debs carried in .gl/ (NVIDIA machines only) and the
# binaries carried in .devbin/bin.tgz (tools/device_pack.sh) into $B, points the
# Vulkan loader at the NVIDIA driver when it does not find it by itself, and
# selects the NVIDIA adapter. Sets OUT (default /tmp/out) and B.
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
if command -v nvidia-smi >/dev/null; then for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig; fi
B=/tmp/devbin
mkdir -p $B && tar xzf .devbin/bin.tgz -C $B
if ! $B/wunet devices 2>/dev/null | grep -qi nvidia; then
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi
export WUNET_ADAPTER=${WUNET_ADAPTER:-nvidia} WUNET_REQUIRE_GPU=1 PYTHONUNBUFFERED=1
