#!/usr/bin/env bash
# Checks that Cargo.toml's rust-version is not below what the locked crates
# declare (their own rust-version fields, from `cargo metadata --locked`). Our
# own code's use of newer std APIs is caught by clippy's incompatible_msrv lint
# (scripts/test.sh runs clippy with -D warnings). What this cannot check: that a
# rustc of exactly that version compiles the tree; only one toolchain is
# installed here.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"
cargo metadata --locked --format-version 1 --filter-platform "$(rustc -vV | sed -n 's/^host: //p')" |
python3 -c '
import json, sys
meta = json.load(sys.stdin)
used = {n["id"] for n in meta["resolve"]["nodes"]}
def ver(s): return tuple(int(x) for x in s.split("."))
ours = next(p for p in meta["packages"] if p["id"] == meta["resolve"]["root"])
declared = ours.get("rust_version")
if not declared:
    sys.exit("Cargo.toml: no rust-version")
needs = max((ver(p["rust_version"]), p["name"], p["version"])
            for p in meta["packages"]
            if p["id"] in used and p["id"] != ours["id"] and p.get("rust_version"))
if ver(declared) < needs[0]:
    sys.exit("Cargo.toml: rust-version = %s, but %s %s needs rustc %s"
             % (declared, needs[1], needs[2], ".".join(map(str, needs[0]))))
print("rust-version %s covers the locked crates (highest: %s %s needs %s)"
      % (declared, needs[1], needs[2], ".".join(map(str, needs[0]))))
'
