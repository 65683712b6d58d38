#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the whole test suite: formatting, clippy,
# unit and integration tests against real SQLite, a real mosquitto (the tests
# start their own on free loopback ports), the real ONNX models and the photos
# in ../shared.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
"$here/scripts/setup.sh"
export PATH="$HOME/.cargo/bin:$PATH"
export ORT_DYLIB_PATH="$here/.cache/onnxruntime/libonnxruntime.so"
export GATEHOUSE_SHARED="${GATEHOUSE_SHARED:-$(cd "$here/.." && pwd)/shared}"
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked --all-targets
