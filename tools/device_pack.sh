#!/usr/bin/env bash
# Build release binaries here and copy them into .devbin/ (git-ignored) for the device machine.
set -eu
cd "$(dirname "$0")/.."
cargo build --release
mkdir -p .devbin && rm -f .devbin/*
cp target/release/wunet .devbin/
for t in conv runtime; do
    f=$(cargo test --release --no-run --test "$t" 2>&1 | grep -oE "target/release/deps/$t-[0-9a-f]+" | head -1)
    cp "$f" ".devbin/test-$t"
done
f=$(cargo test --release --no-run --test golden 2>&1 | grep -oE "target/release/deps/golden-[0-9a-f]+" | head -1 || true)
[ -n "$f" ] && cp "$f" .devbin/golden || true
du -sh .devbin
