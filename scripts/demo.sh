#!/usr/bin/env bash
# Sets up (scripts/setup.sh), builds, installs the models and runs `gatehouse demo`:
# the whole gate with simulated hardware and a video camera, nothing external.
# Extra arguments go to `gatehouse demo` (e.g. --broker mqtt://127.0.0.1:1883).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
"$here/scripts/setup.sh"
export PATH="$HOME/.cargo/bin:$PATH"
export ORT_DYLIB_PATH="$here/.cache/onnxruntime/libonnxruntime.so"
cargo build --locked --release
exec "$here/target/release/gatehouse" demo "$@"
