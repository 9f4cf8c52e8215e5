#!/usr/bin/env bash
# `make lint`: clang-format check, cppcheck, clang-tidy. Exits non-zero on any finding.
set -uo pipefail
build=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
rc=0
mapfile -t files < <(git ls-files -co --exclude-standard '*.c' '*.h' | grep -v -e '^build' -e 'vmlinux.h' -e '\.pb-c\.' -e '\.skel\.h$' | sort)
mapfile -t csrc < <(printf '%s\n' "${files[@]}" | grep -E '^src/.*\.c$' | grep -v '\.bpf\.c$')

echo "== clang-format (${#files[@]} files)"
clang-format --dry-run -Werror "${files[@]}" || rc=1

echo "== cppcheck"
cppcheck -q --error-exitcode=1 --enable=warning,portability --inline-suppr \
	--std=c11 -D_GNU_SOURCE -D__x86_64__ \
	-DPROTOBUF_C_VERSION_NUMBER=1004001 -DPROTOBUF_C_MIN_COMPILER_VERSION=1000000 -Isrc/lib -Isrc -I"$build" -I"$build/proto" \
	--suppress=missingIncludeSystem --suppress=unknownMacro --suppress=preprocessorErrorDirective \
	"${csrc[@]}" || rc=1

echo "== clang-tidy"
if [ -f "$build/compile_commands.json" ]; then
	# clang-tidy does not know gcc-only flags; strip them through a cleaned database.
	mkdir -p "$build/tidy"
	/usr/bin/python3 - "$build/compile_commands.json" "$build/tidy/compile_commands.json" <<'PY'
import json, sys
db = json.load(open(sys.argv[1]))
bad = ("-fstack-clash-protection", "-fcf-protection", "-fdiagnostics-color=always")
for e in db:
    e["command"] = " ".join(a for a in e["command"].split() if a not in bad)
json.dump(db, open(sys.argv[2], "w"))
PY
	# clang-tidy exits non-zero on a finding it treats as an error, and so
	# does xargs then: the findings are judged from the output alone (with
	# pipefail, `| grep && rc=1` never fired for those).
	tidy=$(printf '%s\n' "${csrc[@]}" | xargs -P 2 -n 4 clang-tidy -quiet -p "$build/tidy" \
		--extra-arg=-Wno-unknown-warning-option 2>/dev/null || true)
	if grep -E 'warning:|error:' <<<"$tidy"; then
		rc=1
	fi
fi
[ $rc -eq 0 ] && echo "lint: clean"
exit $rc
