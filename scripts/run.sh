#!/usr/bin/env bash
# `make run`: the agent in the foreground with the embedded default config.
set -euo pipefail
build=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
mkdir -p var
if [ -x "$build/src/agent/daemoneye-agent" ]; then
	export DAEMONEYE_PROCMOND_BINARY="$top/$build/src/procmond/procmond"
	exec "$build/src/agent/daemoneye-agent" --data-dir var --rules-dir rules
fi
# Until the agent exists, run what does: the collector, standalone.
exec "$build/src/procmond/procmond"
