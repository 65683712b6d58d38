#!/usr/bin/env bash
# Cross-builds the release binary for a 64-bit Raspberry Pi OS (aarch64) on a
# Debian 12 x86_64 machine, without Docker: Debian's cross gcc and its multiarch
# OpenCV (libopencv-dev:arm64). Output: target/aarch64-unknown-linux-gnu/release/gatehouse
# plus the aarch64 ONNX Runtime library in .cache/onnxruntime-aarch64/.
# (With Docker, `cross build --release --target aarch64-unknown-linux-gnu` uses cross.toml instead.)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
export PATH="$HOME/.cargo/bin:$PATH"

target=aarch64-unknown-linux-gnu
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $SUDO dpkg --add-architecture arm64
  $SUDO apt-get update -qq
fi
need=()
for p in gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross libopencv-dev:arm64 clang libclang-dev pkg-config; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
rustup target list --installed | grep -qx "$target" || rustup target add "$target"

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
export PKG_CONFIG_ALLOW_CROSS=1
export PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig
# The OpenCV binding generator parses the arm64 headers with libclang.
export OPENCV_CLANG_ARGS="--target=aarch64-linux-gnu -I/usr/include/aarch64-linux-gnu"
cargo build --locked --release --target "$target"

# The matching ONNX Runtime library, from the aarch64 wheel (sha256 pinned in setup.sh's table).
ORT_VERSION=1.31.1
wheel_sha=da05378364c44d4407e463982d2bf8d5e4cfea873283757e48beeb41df97b7f3
cache="$here/.cache/onnxruntime-aarch64"
if [ ! -f "$cache/libonnxruntime.so.$ORT_VERSION" ]; then
  mkdir -p "$cache/wheel"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_28_aarch64 "onnxruntime==$ORT_VERSION" -d "$cache/wheel"
  wheel=$(ls "$cache"/wheel/onnxruntime-$ORT_VERSION-*aarch64.whl)
  echo "$wheel_sha  $wheel" | sha256sum --check --quiet
  unzip -o -q -j "$wheel" "onnxruntime/capi/libonnxruntime.so.$ORT_VERSION" -d "$cache"
fi
file "target/$target/release/gatehouse" 2>/dev/null || true
echo "built target/$target/release/gatehouse and $cache/libonnxruntime.so.$ORT_VERSION"
