#!/usr/bin/env bash
# Packages an already built gatehouse as a Debian package with everything the
# Pi needs from this repository: the binary, the ONNX Runtime library, the
# systemd unit (/usr/lib/systemd/system), sysusers.d and tmpfiles.d files, the
# example config (as a conffile, /etc/gatehouse/gatehouse.toml), the docs and a
# copyright file naming the licences of the linked crates and of ONNX Runtime,
# man pages and bash/zsh/fish completions generated from the CLI definitions.
# Depends is computed from the shared libraries the binaries need. Models are
# not included: `gatehouse models fetch` installs them (or --mirror from a USB stick).
#
#   cargo build && scripts/build-aarch64.sh && scripts/build-deb.sh --arch arm64   # for the Pi
#   cargo build --release && scripts/build-deb.sh                  # amd64
#
# Options: --arch amd64|arm64, --binary FILE, --onnxruntime FILE,
#          --docs-binary FILE (generates the man pages and completions; default
#          the packaged binary on its own architecture, else target/release or
#          target/debug/gatehouse),
#          --out DIR (default target/debian), --compress xz|none.
# Maintainer and e-mail from DEBFULLNAME / DEBEMAIL. Prints the path of the .deb.
# Needs dpkg-deb, dpkg-dev (dpkg-shlibdeps), binutils, python3 and cargo.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

arch=amd64 binary="" ort="" out="$here/target/debian" compress=xz docs_binary=""
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch="$2"; shift 2 ;;
    --binary) binary="$2"; shift 2 ;;
    --onnxruntime) ort="$2"; shift 2 ;;
    --docs-binary) docs_binary="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --compress) compress="$2"; shift 2 ;;
    *) echo "build-deb.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
case "$arch" in
  amd64) strip_tool=strip
         : "${binary:=target/release/gatehouse}"
         : "${ort:=.cache/onnxruntime/libonnxruntime.so.1.31.1}" ;;
  arm64) strip_tool=aarch64-linux-gnu-strip
         : "${binary:=target/aarch64-unknown-linux-gnu/release/gatehouse}"
         : "${ort:=.cache/onnxruntime-aarch64/libonnxruntime.so.1.31.1}" ;;
  *) echo "build-deb.sh: --arch must be amd64 or arm64, got $arch" >&2; exit 2 ;;
esac
for f in "$binary" "$ort"; do
  [ -f "$f" ] || { echo "build-deb.sh: $f not found (build it first; see README)" >&2; exit 1; }
done

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
chmod 0755 "$stage"

install -D -m 0755 "$binary" "$stage/usr/bin/gatehouse"
if command -v "$strip_tool" >/dev/null; then
  "$strip_tool" --strip-debug "$stage/usr/bin/gatehouse"
else
  echo "build-deb.sh: $strip_tool not found; packaging the binary unstripped" >&2
fi
# The unit points ORT_DYLIB_PATH here.
install -D -m 0644 "$ort" "$stage/usr/lib/gatehouse/libonnxruntime.so"
install -D -m 0644 systemd/gatehouse.service "$stage/usr/lib/systemd/system/gatehouse.service"
install -D -m 0644 systemd/gatehouse.sysusers "$stage/usr/lib/sysusers.d/gatehouse.conf"
install -D -m 0644 systemd/gatehouse.tmpfiles "$stage/usr/lib/tmpfiles.d/gatehouse.conf"
install -D -m 0640 config/gatehouse.example.toml "$stage/etc/gatehouse/gatehouse.toml"
# Man pages and completions from the binary's own clap definitions: generated
# by the packaged binary when it runs here, else by --docs-binary (a build for
# this machine, e.g. target/release/gatehouse, when packaging for arm64).
docs_bin="$docs_binary"
if [ -z "$docs_bin" ]; then
  if [ "$arch" = "$(dpkg --print-architecture)" ]; then docs_bin="$binary"
  elif [ -x target/release/gatehouse ]; then docs_bin=target/release/gatehouse
  else docs_bin=target/debug/gatehouse; fi
fi
[ -x "$docs_bin" ] || { echo "build-deb.sh: $docs_bin not found; pass --docs-binary (a gatehouse that runs here)" >&2; exit 1; }
"$docs_bin" docs "$stage/docs" >/dev/null
for page in "$stage"/docs/man/*.1; do
  gzip -9n <"$page" >"$page.gz"
  install -D -m 0644 "$page.gz" "$stage/usr/share/man/man1/$(basename "$page").gz"
done
install -D -m 0644 "$stage/docs/completions/gatehouse.bash" "$stage/usr/share/bash-completion/completions/gatehouse"
install -D -m 0644 "$stage/docs/completions/_gatehouse" "$stage/usr/share/zsh/vendor-completions/_gatehouse"
install -D -m 0644 "$stage/docs/completions/gatehouse.fish" "$stage/usr/share/fish/vendor_completions.d/gatehouse.fish"
rm -rf "$stage/docs"

for doc in README.md ARCHITECTURE.md BENCHMARKS.md; do
  install -D -m 0644 "$doc" "$stage/usr/share/doc/gatehouse/$doc"
done
install -D -m 0644 config/gatehouse.example.toml "$stage/usr/share/doc/gatehouse/gatehouse.example.toml"


# Licences: every crate linked into the binary (normal dependencies for the
# target), and ONNX Runtime's licence from the wheel when it is at hand.
case "$arch" in amd64) triple=x86_64-unknown-linux-gnu ;; arm64) triple=aarch64-unknown-linux-gnu ;; esac
ort_licence=""
for w in .cache/onnxruntime/wheel/*.whl .cache/onnxruntime-aarch64/wheel/*.whl; do
  if [ -f "$w" ]; then ort_licence=$(unzip -p "$w" onnxruntime/LICENSE); break; fi
done
export PATH="$HOME/.cargo/bin:$PATH"
cargo metadata --locked --format-version 1 --filter-platform "$triple" |
  ORT_LICENCE="$ort_licence" python3 "$here/scripts/deb-copyright.py" >"$stage/copyright"
install -D -m 0644 "$stage/copyright" "$stage/usr/share/doc/gatehouse/copyright"
rm "$stage/copyright"

# Depends from the shared libraries the binary and ONNX Runtime need: for the
# machine's own architecture dpkg-shlibdeps (with versions); for arm64 built on
# amd64 each library is named by the package that ships it here (multiarch
# package names are the same on both).
deps=""
if [ "$arch" = "$(dpkg --print-architecture)" ]; then
  shl=$(mktemp -d)
  mkdir -p "$shl/debian"
  printf 'Source: gatehouse\n\nPackage: gatehouse\nArchitecture: any\n' >"$shl/debian/control"
  deps=$(cd "$shl" && dpkg-shlibdeps -O "$stage/usr/bin/gatehouse" \
           "$stage/usr/lib/gatehouse/libonnxruntime.so" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
  rm -rf "$shl"
else
  for so in $(objdump -p "$stage/usr/bin/gatehouse" "$stage/usr/lib/gatehouse/libonnxruntime.so" |
              awk '$1 == "NEEDED" {print $2}' | sort -u); do
    pkg=$(dpkg -S "*/$so" 2>/dev/null | grep -v -- '-cross' | head -n1 | cut -d: -f1)
    [ -n "$pkg" ] || { echo "build-deb.sh: no package ships $so on this machine" >&2; exit 1; }
    case ", $deps, " in *", $pkg, "*) ;; *) deps="$deps${deps:+, }$pkg" ;; esac
  done
fi
[ -n "$deps" ] || { echo "build-deb.sh: could not compute Depends" >&2; exit 1; }

mkdir -p "$stage/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<EOF
Package: gatehouse
Version: $version
Architecture: $arch
Maintainer: ${DEBFULLNAME:-gatehouse maintainers} <${DEBEMAIL:-maintainers@gatehouse.invalid}>
Installed-Size: $size
Depends: $deps, systemd, init-system-helpers (>= 1.54~), ca-certificates
Section: misc
Priority: optional
Description: gate controller for residential compounds
 Card, face and licence-plate access for a compound's gates on a Raspberry Pi,
 registers in SQLite, events over MQTT to the police station. Runs as the
 systemd service gatehouse.service under its own user.
EOF
echo /etc/gatehouse/gatehouse.toml >"$stage/DEBIAN/conffiles"

# Not started on install: the operator edits the config, fetches the models and
# runs `gatehouse doctor` first (README "Building for and installing on a Raspberry Pi").
# The unit is handled with deb-systemd-helper as debhelper's dh_installsystemd
# does: the enablement state survives upgrades; masked while removed, not purged.
cat >"$stage/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ] || [ "$1" = abort-upgrade ] || [ "$1" = abort-deconfigure ] || [ "$1" = abort-remove ]; then
  systemd-sysusers /usr/lib/sysusers.d/gatehouse.conf
  systemd-tmpfiles --create /usr/lib/tmpfiles.d/gatehouse.conf
  # The config may hold the LPR token: readable by the service, not by everyone.
  chgrp gatehouse /etc/gatehouse/gatehouse.toml
  chmod 0640 /etc/gatehouse/gatehouse.toml
  # The device secret lives outside the data directory (README "Personal data").
  # An older install kept it in /var/lib/gatehouse: move it (the hashes stay valid);
  # a new install gets a fresh one. The daemon reads it as the gatehouse user.
  key=/etc/gatehouse/device.key
  if [ ! -e "$key" ]; then
    if [ -e /var/lib/gatehouse/device.key ]; then
      install -m 0600 -o gatehouse -g gatehouse /var/lib/gatehouse/device.key "$key"
      rm -f /var/lib/gatehouse/device.key
      echo "gatehouse: moved the device secret to $key"
    else
      (umask 077; head -c 32 /dev/urandom >"$key")
      chown gatehouse:gatehouse "$key"
    fi
  fi
  deb-systemd-helper unmask gatehouse.service >/dev/null || true
  if deb-systemd-helper --quiet was-enabled gatehouse.service; then
    deb-systemd-helper enable gatehouse.service >/dev/null || true
  else
    deb-systemd-helper update-state gatehouse.service >/dev/null || true
  fi
  if [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
    # An upgrade restarts a running daemon on the new binary.
    [ -z "$2" ] || deb-systemd-invoke try-restart gatehouse.service >/dev/null || true
  fi
fi
exit 0
EOF
cat >"$stage/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
  deb-systemd-invoke stop gatehouse.service >/dev/null || true
fi
exit 0
EOF
# Purging keeps /var/lib/gatehouse: the event log may have to be kept by law.
cat >"$stage/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl --system daemon-reload >/dev/null || true
fi
if [ "$1" = remove ] && [ -x /usr/bin/deb-systemd-helper ]; then
  deb-systemd-helper mask gatehouse.service >/dev/null || true
fi
if [ "$1" = purge ] && [ -x /usr/bin/deb-systemd-helper ]; then
  deb-systemd-helper purge gatehouse.service >/dev/null || true
  deb-systemd-helper unmask gatehouse.service >/dev/null || true
fi
exit 0
EOF
chmod 0755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/prerm" "$stage/DEBIAN/postrm"

mkdir -p "$out"
deb="$out/gatehouse_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Z"$compress" --build "$stage" "$deb" >/dev/null
echo "$deb"
