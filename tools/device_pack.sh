#!/usr/bin/env bash
# Build release binaries here and copy them into .devbin/ (git-ignored) for the
# device machine (which has no Rust): the CLI and every test binary, or only the
# test binaries named as arguments (e.g. `tools/device_pack.sh conv_coop amp golden`).
set -eu
cd "$(dirname "$0")/.."
cargo build --release
stage=$(mktemp -d)
cp target/release/wunet "$stage/"
cargo test --release --no-run 2>&1 | grep -oE "target/release/deps/[a-z_0-9]+-[0-9a-f]{16}" | sort -u | while read -r f; do
    name=$(basename "$f" | sed -E 's/-[0-9a-f]{16}$//')
    case "$name" in wunet|wgsl|data|models) continue;; esac   # no GPU in those
    if [ $# -gt 0 ] && ! printf '%s\n' "$@" | grep -qx "$name"; then continue; fi
    if [ "$name" = golden ]; then cp "$f" "$stage/golden"; else cp "$f" "$stage/test-$name"; fi
done
strip "$stage"/*
mkdir -p .devbin && rm -rf .devbin/*
tar czf .devbin/bin.tgz -C "$stage" .
rm -rf "$stage"
ls -la .devbin
