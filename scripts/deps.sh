#!/usr/bin/env bash
# The one list of Debian packages DaemonEye needs to build, test, lint and run.
# Installs only what is missing; silent and fast when everything is present.
# Usage: scripts/deps.sh            (build + test + lint set)
set -euo pipefail

PKGS=(
	# build
	build-essential pkg-config meson ninja-build
	clang llvm lld bpftool libbpf-dev linux-libc-dev
	libsqlite3-dev libssl-dev libprotobuf-c-dev protobuf-c-compiler
	libyaml-dev libcap-dev libseccomp-dev libpcre2-dev
	libcurl4-openssl-dev libjansson-dev libedit-dev
	# test
	libcmocka-dev python3 python3-pytest python3-yaml libclang-rt-14-dev sqlite3
	rsyslog procps passwd util-linux openssl
	# lint, coverage, docs
	cppcheck clang-tidy clang-format gcovr scdoc
)

missing=()
for p in "${PKGS[@]}"; do
	if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
		missing+=("$p")
	fi
done
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: missing Debian packages: ${missing[*]}" >&2
	echo "deps.sh: run as root (or: sudo apt-get install ${missing[*]})" >&2
	exit 1
fi
echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
