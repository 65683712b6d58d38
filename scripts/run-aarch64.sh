#!/usr/bin/env bash
# Runs the Pi's binary (built by scripts/build-aarch64.sh) under qemu-user on this
# x86_64 machine: `--version`, `config check`, and `face eval` on ../shared/faces/pairs.csv
# with the aarch64 ONNX Runtime. Every pair's score must equal the x86_64 build's
# within 1e-3, or this fails. Emulated timings are not Pi timings (BENCHMARKS.md).
#
# The arm64 runtime libraries (OpenCV and everything it loads) are unpacked from
# Debian's arm64 packages into a private folder, never installed: Debian 12 cannot
# hold OpenCV for amd64 and arm64 side by side.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
target=aarch64-unknown-linux-gnu
arm_bin="$here/target/$target/release/gatehouse"
x86_bin="${GATEHOUSE_X86_BIN:-$here/target/debug/gatehouse}"
ort_arm=$(ls "$here"/.cache/onnxruntime-aarch64/libonnxruntime.so.* | head -n1)
shared="${GATEHOUSE_SHARED:-$(cd "$here/.." && pwd)/shared}"
[ -x "$arm_bin" ] || { echo "run-aarch64: $arm_bin missing: run scripts/build-aarch64.sh first" >&2; exit 1; }
[ -x "$x86_bin" ] || { echo "run-aarch64: $x86_bin missing: build it (cargo build) first" >&2; exit 1; }
[ -f "$shared/faces/pairs.csv" ] || { echo "run-aarch64: $shared/faces/pairs.csv missing" >&2; exit 1; }

command -v qemu-aarch64-static >/dev/null ||
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends qemu-user-static

# OpenCV's arm64 runtime closure as apt would install it, arm64 packages only
# (architecture-independent data packages are not needed to load a library).
runroot="$here/.cache/sysroot-arm64-run"
if [ ! -f "$runroot/.complete" ]; then
  debs="$here/.cache/arm64-run-debs"
  rm -rf "$runroot"
  mkdir -p "$debs" "$runroot"
  apt-cache show libopencv-core406:arm64 >/dev/null 2>&1 || $SUDO apt-get update -qq
  apt-get install -s --no-install-recommends \
    libc6:arm64 libstdc++6:arm64 libgcc-s1:arm64 \
    libopencv-core406:arm64 libopencv-imgproc406:arm64 libopencv-imgcodecs406:arm64 \
    libopencv-videoio406:arm64 libopencv-calib3d406:arm64 |
    awk '/^Inst / && $2 ~ /:arm64$/ {print $2}' > "$debs/closure.txt"
  [ -s "$debs/closure.txt" ] || { echo "run-aarch64: could not resolve the arm64 OpenCV runtime" >&2; exit 1; }
  (cd "$debs" && xargs -a closure.txt apt-get download -q)
  for d in "$debs"/*.deb; do dpkg -x "$d" "$runroot"; done
  # BLAS/LAPACK are reached through update-alternatives links that only a real install makes.
  libdir="$runroot/usr/lib/aarch64-linux-gnu"
  for lib in libblas.so.3 liblapack.so.3; do
    if [ ! -e "$libdir/$lib" ]; then
      found=$(find "$libdir" -mindepth 2 -name "$lib" | sort | head -n1)
      [ -n "$found" ] && ln -sf "${found#"$libdir"/}" "$libdir/$lib"
    fi
  done
  touch "$runroot/.complete"
fi
# qemu-user shows the host's own /proc/cpuinfo (x86), which ONNX Runtime's cpuinfo
# cannot parse as ARM and crashes on (NULL dereference); qemu opens a path
# under -L first, so the emulated program reads a Pi 4's (Cortex-A72) instead.
mkdir -p "$runroot/proc"
python3 - "$runroot/proc/cpuinfo" <<'EOF_CPU'
import sys
cores = "".join(
    f"processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n"
    "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\n"
    "CPU revision\t: 3\n\n"
    for i in range(4)
)
with open(sys.argv[1], "w") as f:
    f.write(cores + "Hardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B\n")
EOF_CPU
libpath="$runroot/usr/lib/aarch64-linux-gnu:$runroot/lib/aarch64-linux-gnu"
arm() {
  qemu-aarch64-static -L "$runroot" -E "LD_LIBRARY_PATH=$libpath" -E "ORT_DYLIB_PATH=$ort_arm" "$arm_bin" "$@"
}

work="$here/.cache/aarch64-check"
rm -rf "$work"
mkdir -p "$work"
echo "== aarch64 gatehouse --version (qemu-user)"
arm --version
echo "== aarch64 gatehouse config check config/demo.toml"
arm config check "$here/config/demo.toml"

echo "== face eval on pairs.csv: aarch64 (emulated) against x86_64"
arm --config "$here/config/demo.toml" --data-dir "$work/arm" models fetch --mirror "$shared/models" \
  yunet-2026may mobilefacenet >/dev/null
arm --config "$here/config/demo.toml" --data-dir "$work/arm" face eval \
  --pairs "$shared/faces/pairs.csv" --root "$shared/faces" --scores "$work/arm.csv" | tail -n1
ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$here/.cache/onnxruntime/libonnxruntime.so}" \
  "$x86_bin" --config "$here/config/demo.toml" --data-dir "$work/x86" models fetch \
  --mirror "$shared/models" yunet-2026may mobilefacenet >/dev/null
ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$here/.cache/onnxruntime/libonnxruntime.so}" \
  "$x86_bin" --config "$here/config/demo.toml" --data-dir "$work/x86" face eval \
  --pairs "$shared/faces/pairs.csv" --root "$shared/faces" --scores "$work/x86.csv" | tail -n1
python3 - "$work/x86.csv" "$work/arm.csv" <<'EOF'
import csv, sys
def load(path):
    with open(path, newline="") as f:
        return {(r["image_a"], r["image_b"]): r["score"] for r in csv.DictReader(f)}
x86, arm = load(sys.argv[1]), load(sys.argv[2])
if not x86:
    sys.exit("run-aarch64: the x86_64 run scored no pairs")
if x86.keys() != arm.keys():
    sys.exit(f"run-aarch64: scored pairs differ: x86_64 {len(x86)}, aarch64 {len(arm)}, "
             f"only one side: {sorted(x86.keys() ^ arm.keys())[:5]}")
worst, at = 0.0, None
for k, s in x86.items():
    a = arm[k]
    if (s == "") != (a == ""):
        sys.exit(f"run-aarch64: {k}: x86_64 score {s!r}, aarch64 {a!r}")
    if s:
        d = abs(float(s) - float(a))
        if d > worst:
            worst, at = d, k
if worst > 1e-3:
    sys.exit(f"run-aarch64: {at}: scores differ by {worst:.6f} (> 1e-3)")
print(f"aarch64 and x86_64 agree on {len(x86)} pairs: largest score difference {worst:.2e} (limit 1e-3)")
EOF
