#!/usr/bin/env bash
# `make run`: the agent in the foreground with the embedded default config:
# data under ./var, the bundled rules, alerts to stdout (human), procmond
# spawned from the build. Ctrl-C stops both (docs/pipeline.md).
set -euo pipefail
build=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
mkdir -p var
agent="$build/src/agent/daemoneye-agent"
if [ ! -x "$agent" ]; then
	echo "run.sh: $agent is not built (make build)" >&2
	exit 1
fi
export DAEMONEYE_PROCMOND_BINARY="$top/$build/src/procmond/procmond"
exec "$agent" --data-dir var --rules-dir rules
