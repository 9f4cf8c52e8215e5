#!/usr/bin/env bash
# Runs every test and prints one closing line "N passed, N failed, N skipped".
#   $1  the normal build dir    $2  the ASan+UBSan build dir
# Exits non-zero when anything failed.
set -uo pipefail
build=${1:-build}
asan=${2:-build-asan}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
rc=0

echo "== unit tests and fuzz-corpus replay ($build)"
meson test -C "$build" --no-rebuild --print-errorlogs --num-processes 2 || rc=1

echo "== unit tests and fuzz-corpus replay under ASan+UBSan ($asan)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	meson test -C "$asan" --no-rebuild --print-errorlogs --num-processes 2 \
	--suite unit --suite fuzz --logbase asanlog || rc=1

echo "== end-to-end tests"
junit="$build/pytest-junit.xml"
DE_BUILD_DIR="$top/$build" /usr/bin/python3 -m pytest -q -rs -p no:cacheprovider \
	--junitxml="$junit" tests/e2e
prc=$?
# pytest exits 5 when it collected no tests; that is not a failure of ours.
[ "$prc" -ne 0 ] && [ "$prc" -ne 5 ] && rc=1

/usr/bin/python3 - "$build/meson-logs/testlog.json" "$asan/meson-logs/asanlog.json" "$junit" <<'PY'
import json, sys, os
import xml.etree.ElementTree as ET
p = f = s = 0
for path in sys.argv[1:3]:
    if not os.path.exists(path):
        continue
    for line in open(path):
        r = json.loads(line).get("result", "")
        if r in ("OK", "EXPECTEDFAIL"): p += 1
        elif r == "SKIP": s += 1
        else: f += 1
junit = sys.argv[3]
if os.path.exists(junit):
    root = ET.parse(junit).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    for ts in suites:
        t = int(ts.get("tests", 0)); e = int(ts.get("errors", 0))
        fl = int(ts.get("failures", 0)); sk = int(ts.get("skipped", 0))
        p += t - e - fl - sk; f += e + fl; s += sk
print(f"{p} passed, {f} failed, {s} skipped")
PY
exit $rc
