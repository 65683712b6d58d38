#!/usr/bin/env bash
# Incremental rebuild times after a one-line edit at three layers (ARCHITECTURE.md, "Build").
# Run on a warm target (after `cargo test --no-run`) on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
t() {
    local s e
    s=$(date +%s.%N)
    "$@" >/dev/null 2>&1
    e=$(date +%s.%N)
    printf '%-45s %-40s %6.1f s\n' "$label" "$*" "$(echo "$e - $s" | bc)"
}
edit() { echo "const _EDIT_PROBE_$RANDOM: u32 = $RANDOM;" >>"$1"; }
cargo test --no-run >/dev/null 2>&1
for f in src/access/mod.rs src/daemon/core.rs src/console/web.rs; do
    cp "$f" "$f.orig"
    trap 'mv "$f.orig" "$f"' EXIT
    label="edit $f"
    edit "$f"; t cargo build
    edit "$f"; t cargo test --no-run
    mv "$f.orig" "$f"
    trap - EXIT
done
cargo test --no-run >/dev/null 2>&1
