#!/usr/bin/env bash
# Part of `make install`: creates the unprivileged `daemoneye` system user and
# group the agent runs as (SPEC §8), and the data directory it owns. Skipped for
# staged installs (DESTDIR set) and when not root.
set -euo pipefail
destdir=${1:-}
[ -z "$destdir" ] || exit 0
[ "$(id -u)" -eq 0 ] || { echo "install-user: not root, daemoneye user not created" >&2; exit 0; }
getent group daemoneye >/dev/null || groupadd --system daemoneye
getent passwd daemoneye >/dev/null ||
	useradd --system --gid daemoneye --home-dir /var/lib/daemoneye --no-create-home \
		--shell /usr/sbin/nologin daemoneye
install -d -m 0750 -o daemoneye -g daemoneye /var/lib/daemoneye
