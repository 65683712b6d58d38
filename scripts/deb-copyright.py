"""Writes the package's /usr/share/doc/gatehouse/copyright (Debian's
machine-readable format) from `cargo metadata` on stdin: gatehouse's own
licence, every crate statically linked into the binary (normal dependencies,
transitively) with its licence, and ONNX Runtime's licence text from the
ORT_LICENCE environment variable. Called by scripts/build-deb.sh."""

import json
import os
import sys

meta = json.load(sys.stdin)
nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
pkgs = {p["id"]: p for p in meta["packages"]}
root = meta["resolve"]["root"]

# Only what is linked: dev- and build-dependencies do not end up in the binary.
linked, todo = set(), [root]
while todo:
    for dep in nodes[todo.pop()]["deps"]:
        normal = any(k["kind"] is None for k in dep["dep_kinds"])
        if normal and dep["pkg"] not in linked:
            linked.add(dep["pkg"])
            todo.append(dep["pkg"])

ours = pkgs[root]
out = [
    "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/",
    "Upstream-Name: gatehouse",
    "",
    "Files: usr/bin/gatehouse",
    "Copyright: the gatehouse authors and the authors of the crates below",
    "License: %s" % ours["license"],
    " gatehouse statically links these Rust crates (name version: licence):",
]
for p in sorted((pkgs[i] for i in linked), key=lambda p: (p["name"], p["version"])):
    licence = p.get("license") or "see %s" % (p.get("license_file") or p.get("repository") or "crates.io")
    out.append("  %s %s: %s" % (p["name"], p["version"], licence))
out += [
    " .",
    " The Apache-2.0 text is in /usr/share/common-licenses/Apache-2.0; each",
    " crate's own licence text is in its source on crates.io.",
    "",
    "Files: usr/lib/gatehouse/libonnxruntime.so",
    "Copyright: Microsoft Corporation",
    "License: MIT",
]
text = os.environ.get("ORT_LICENCE") or "ONNX Runtime (https://onnxruntime.ai) is released under the MIT licence."
out += [" " + (line if line.strip() else ".") for line in text.splitlines()]
print("\n".join(out))
if len(linked) < 10:
    sys.exit("deb-copyright.py: only %d linked crates found; is this gatehouse's metadata?" % len(linked))
