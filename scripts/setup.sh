#!/usr/bin/env bash
# Installs everything gatehouse needs to build, test and run on Debian 12 /
# Raspberry Pi OS (bookworm): apt packages, the Rust toolchain if missing, and
# ONNX Runtime's shared library from the PyPI wheel (checked by sha256), and
# the test suite's Python station (pinned, hash-checked PyPI wheels in a venv).
# Idempotent: a second run only checks.
#
#   scripts/setup.sh            # everything
#   GATEHOUSE_SKIP_APT=1 ...    # when the packages are managed elsewhere
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# --- apt packages ----------------------------------------------------------
packages=(build-essential pkg-config curl ca-certificates unzip python3 python3-pip python3-venv
          libopencv-dev clang libclang-dev mosquitto mosquitto-clients systemd
          chromium chromium-driver fonts-wqy-microhei openssl binutils)
if [ "${GATEHOUSE_SKIP_APT:-0}" != "1" ]; then
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

# --- Rust ------------------------------------------------------------------
if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "setup: installing the Rust toolchain with rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c rustfmt,clippy
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi

# --- ONNX Runtime ------------------------------------------------------------
# The version ort 2.0.0-rc.15 (feature api-31) expects, and the pinned wheels.
ORT_VERSION=1.31.1
case "$(uname -m)" in
  x86_64)  platform=manylinux_2_28_x86_64;  wheel_sha=5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f ;;
  aarch64) platform=manylinux_2_28_aarch64; wheel_sha=da05378364c44d4407e463982d2bf8d5e4cfea873283757e48beeb41df97b7f3 ;;
  *) echo "setup: no onnxruntime wheel for $(uname -m) on PyPI; face recognition needs a 64-bit OS (aarch64)" >&2; exit 1 ;;
esac
cache="$here/.cache/onnxruntime"
lib="$cache/libonnxruntime.so.$ORT_VERSION"
if [ ! -f "$lib" ]; then
  mkdir -p "$cache/wheel"
  wheel="$cache/wheel/onnxruntime-$ORT_VERSION-cp311-cp311-$platform.whl"
  if [ ! -f "$wheel" ]; then
    echo "setup: downloading the onnxruntime $ORT_VERSION wheel for $platform from PyPI"
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
      --platform "$platform" "onnxruntime==$ORT_VERSION" -d "$cache/wheel"
  fi
  echo "$wheel_sha  $wheel" | sha256sum --check --quiet || {
    echo "setup: $wheel does not have the pinned sha256 $wheel_sha; refusing it" >&2
    rm -f "$wheel"; exit 1; }
  unzip -o -q -j "$wheel" "onnxruntime/capi/libonnxruntime.so.$ORT_VERSION" \
    "onnxruntime/capi/libonnxruntime_providers_shared.so" -d "$cache"
fi
ln -sf "libonnxruntime.so.$ORT_VERSION" "$cache/libonnxruntime.so"
echo "setup: ONNX Runtime $ORT_VERSION at $cache/libonnxruntime.so"

# --- The Python station the tests run (tests/station_py) ---------------------
venv="$here/.cache/station-venv"
reqs="$here/tests/station_py/requirements.txt"
if ! cmp -s "$reqs" "$venv/requirements.installed" 2>/dev/null; then
  echo "setup: installing the Python station's packages into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes \
    --only-binary=:all: -r "$reqs"
  cp "$reqs" "$venv/requirements.installed"
fi
