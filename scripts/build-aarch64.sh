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
# Debian 12 cannot co-install libopencv-dev for amd64 and arm64 (GDAL and VTK
# conflict), so the arm64 OpenCV packages are unpacked into a private sysroot
# instead of being installed: the host's own OpenCV stays untouched.
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $SUDO dpkg --add-architecture arm64
  $SUDO apt-get update -qq
fi
need=()
for p in gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross clang libclang-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
sysroot="$here/.cache/sysroot-arm64"
if [ ! -f "$sysroot/.complete" ]; then
  debs="$here/.cache/arm64-debs"
  mkdir -p "$debs" "$sysroot"
  # apt-get download needs the arm64 package lists.
  apt-cache show libopencv-core406:arm64 >/dev/null 2>&1 || $SUDO apt-get update -qq
  (cd "$debs" && apt-get download -q \
    libopencv-core-dev:arm64 libopencv-core406:arm64 \
    libopencv-imgproc-dev:arm64 libopencv-imgproc406:arm64 \
    libopencv-imgcodecs-dev:arm64 libopencv-imgcodecs406:arm64 \
    libopencv-videoio-dev:arm64 libopencv-videoio406:arm64 \
    libopencv-calib3d-dev:arm64 libopencv-calib3d406:arm64 \
    libopencv-features2d-dev:arm64 libopencv-features2d406:arm64 \
    libopencv-flann-dev:arm64 libopencv-flann406:arm64)
  for d in "$debs"/*.deb; do dpkg -x "$d" "$sysroot"; done
  touch "$sysroot/.complete"
fi
rustup target list --installed | grep -qx "$target" || rustup target add "$target"

libdir="$sysroot/usr/lib/aarch64-linux-gnu"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
# OpenCV's own dependencies (FFmpeg, GDAL, …) are resolved on the Pi at run time.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=-Wl,--allow-shlib-undefined -C link-arg=-Wl,-rpath-link,$libdir"
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
export OPENCV_LINK_LIBS="opencv_core,opencv_imgproc,opencv_imgcodecs,opencv_videoio,opencv_calib3d"
export OPENCV_LINK_PATHS="$libdir"
export OPENCV_INCLUDE_PATHS="$sysroot/usr/include/opencv4,$sysroot/usr/include/aarch64-linux-gnu/opencv4"
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
