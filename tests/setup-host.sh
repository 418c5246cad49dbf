#!/bin/bash
# setup-host.sh -- install what rxen's tests and test bed need on a Debian 12 amd64 host.
# Run as root. Idempotent: a warm machine only checks and returns (about a second).
#
#   tests/setup-host.sh            # install what is missing
#   tests/setup-host.sh --check    # report what is missing, install nothing (exit 1 if any)
set -euo pipefail

# The rustup toolchain when there is one, as tests/run-all.sh chooses.
RUSTUP_BIN=${HOME:-/root}/.cargo/bin
if [ -x "$RUSTUP_BIN/cargo" ]; then
  case ":$PATH:" in *":$RUSTUP_BIN:"*) ;; *) export PATH="$RUSTUP_BIN:$PATH" ;; esac
fi

check_only=0
[ "${1:-}" = --check ] && check_only=1

# foreign_arch ARCH -- dpkg knows ARCH. (Not `dpkg ... | grep -q`: under pipefail,
# grep -q leaving early can fail the pipeline with dpkg's SIGPIPE.)
foreign_arch() { dpkg --print-foreign-architectures | grep -x "$1" >/dev/null; }
say() { printf 'setup-host: %s\n' "$*"; }
die() { printf 'setup-host: ERROR: %s\n' "$*" >&2; exit 1; }

# Host (amd64) packages and the command each one provides (used to detect a warm machine).
#   package                  command or file proving it is installed
HOST_PKGS=(
  qemu-system-arm          /usr/bin/qemu-system-aarch64
  device-tree-compiler     /usr/bin/dtc
  cpio                     /usr/bin/cpio
  gzip                     /usr/bin/gzip
  perl                     /usr/bin/perl
  file                     /usr/bin/file
  coreutils                /usr/bin/timeout
  util-linux               /usr/bin/flock
  xz-utils                 /usr/bin/xz
  gcc-aarch64-linux-gnu    /usr/bin/aarch64-linux-gnu-gcc
  binutils-aarch64-linux-gnu /usr/bin/aarch64-linux-gnu-strip
  libc6-dev-arm64-cross    /usr/aarch64-linux-gnu/lib/libc.a
  rustc-web                /usr/bin/rustc
  cargo-web                /usr/bin/cargo
  xenstore-utils           /usr/bin/xenstore-ls
  libxen-dev               /usr/include/xenctrl.h
  gcc                      /usr/bin/gcc
  shellcheck               /usr/bin/shellcheck
  ca-certificates          /etc/ssl/certs/ca-certificates.crt
)

missing=()
for ((i = 0; i < ${#HOST_PKGS[@]}; i += 2)); do
  [ -e "${HOST_PKGS[i+1]}" ] || missing+=("${HOST_PKGS[i]}")
done
# The aarch64 standard library for Debian's rustc (cross builds of the test bed).
arm64_std=0
if foreign_arch arm64 &&
   dpkg-query -W -f='${Status}' libstd-rust-web-dev:arm64 2>/dev/null | grep -q 'ok installed'; then
  arm64_std=1
else
  missing+=(libstd-rust-web-dev:arm64)
fi

# clippy and rustfmt for whichever cargo is first on PATH (rustup's when present, else
# Debian's cargo-web, whose clippy and rustfmt come from rust-web-clippy and rustfmt-web).
if command -v cargo >/dev/null && [ "$(command -v cargo)" != /usr/bin/cargo ]; then
  # A rustup toolchain: it must already carry clippy and rustfmt; nothing is downloaded.
  cargo clippy --version >/dev/null 2>&1 || die "the rustup toolchain ($(command -v cargo)) has no clippy; add it with rustup (not done here) or remove rustup so Debian's cargo is used"
  cargo fmt --version >/dev/null 2>&1 || die "the rustup toolchain ($(command -v cargo)) has no rustfmt"
else
  [ -x /usr/bin/cargo-clippy ] || missing+=(rust-web-clippy)
  [ -x /usr/bin/rustfmt ] || missing+=(rustfmt-web)
fi

# The test bed's 32-bit guest (Debian's armhf kernel and busybox, fetched by run.sh
# with apt-get download) needs dpkg to know armhf and apt to have its package lists.
armhf_arch=1
foreign_arch armhf || armhf_arch=0

if [ ${#missing[@]} -eq 0 ] && [ "$armhf_arch" = 1 ]; then
  say "all host packages present"
  exit 0
fi
if [ "$check_only" = 1 ]; then
  [ "$armhf_arch" = 1 ] || missing+=("dpkg-architecture:armhf")
  say "missing: ${missing[*]}"
  exit 1
fi
[ "$armhf_arch" = 1 ] || missing_arch=" (and the dpkg architecture armhf)"
[ "$(id -u)" = 0 ] || die "missing ${missing[*]}${missing_arch:-}; run as root to install them"

export DEBIAN_FRONTEND=noninteractive
for arch in arm64 armhf; do
  if ! foreign_arch "$arch"; then
    say "dpkg --add-architecture $arch"
    dpkg --add-architecture "$arch"
  fi
done
say "apt-get update"
apt-get update -qq
if [ ${#missing[@]} -gt 0 ]; then
  say "apt-get install ${missing[*]}"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ "$arm64_std" = 1 ] || dpkg-query -W -f='${Status}' libstd-rust-web-dev:arm64 | grep -q 'ok installed' \
  || die "libstd-rust-web-dev:arm64 did not install"
say "done"
