"""daemoneye-cli end to end (SPEC §3): every command on a real store, in the
three output formats, plus the error paths and their exit codes.

The store is filled through the real schema by tests/tools/store-fill.c
(de-store-fill, built beside the CLI) from a process snapshot: `procmond
--once` when procmond is built, else the same JSON lines read from /proc here.
When daemoneye-agent is built, `health` is also asked of a real agent run.
"""
import csv
import io
import json
import os
import pty
import re
import select
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import BUILD, wait_for

CLI = BUILD / "src" / "cli" / "daemoneye-cli"
FILL = BUILD / "src" / "cli" / "de-store-fill"
PROCMOND = BUILD / "src" / "procmond" / "procmond"
AGENT = BUILD / "src" / "agent" / "daemoneye-agent"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
SEVERITIES = ["info", "low", "medium", "high", "critical"]


def need_cli():
    if not CLI.exists() or not FILL.exists():
        pytest.fail(f"{CLI} or {FILL} is not built: run `make build` first")


def run(*args, data=None, env=None, stdin=None, check=None, timeout=30):
    """Runs the CLI; returns CompletedProcess (text)."""
    argv = [str(CLI)]
    if data is not None:
        argv += ["--data-dir", str(data)]
    argv += [str(a) for a in args]
    e = dict(os.environ)
    e.pop("NO_COLOR", None)
    e.update(env or {})
    # Bytes, decoded here: text mode would turn csv's CRLF into LF.
    p = subprocess.run(argv, capture_output=True, input=stdin.encode() if stdin else None,
                       env=e, timeout=timeout)
    p.stdout = p.stdout.decode("utf-8", "replace")
    p.stderr = p.stderr.decode("utf-8", "replace")
    if check is not None:
        assert p.returncode == check, (argv, p.returncode, p.stdout, p.stderr)
    return p


def run_tty(*args, data=None, env=None, cols=200):
    """Runs the CLI with stdout on a pseudo-terminal; returns (rc, output)."""
    argv = [str(CLI)] + (["--data-dir", str(data)] if data else []) + [str(a) for a in args]
    e = dict(os.environ)
    e.pop("NO_COLOR", None)
    e["COLUMNS"] = str(cols)
    e.update(env or {})
    master, slave = pty.openpty()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=e)
    os.close(slave)
    out = b""
    while True:
        r, _, _ = select.select([master], [], [], 10)
        if not r:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return p.wait(10), out.decode("utf-8", "replace").replace("\r\n", "\n")


def proc_snapshot_lines():
    """SPEC §3 snapshot JSON lines for the processes in /proc (fallback when
    procmond is not built)."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    boot = time.time() - float(Path("/proc/uptime").read_text().split()[0])
    hz = os.sysconf("SC_CLK_TCK")
    lines = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            status = (d / "status").read_text()
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").strip().decode(
                "utf-8", "replace")
        except OSError:
            continue
        rest = stat[stat.rindex(")") + 2:].split()
        uid = int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))
        try:
            import pwd
            user = pwd.getpwuid(uid).pw_name
        except KeyError:
            user = None
        proc = {
            "pid": int(d.name), "ppid": int(rest[1]),
            "name": stat[stat.index("(") + 1:stat.rindex(")")],
            "command_line": cmd or None, "user_id": uid, "user_name": user,
            "start_time": int((boot + int(rest[19]) / hz) * 1000),
            "state": rest[0], "threads": int(rest[17]), "accessible": True,
            "file_exists": True,
        }
        lines.append(json.dumps({"event": "snapshot", "time": now, "process": proc}))
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A data dir whose events.db holds a snapshot of this machine and 60 alerts."""
    need_cli()
    d = tmp_path_factory.mktemp("clistore")
    snap = d / "snapshot.jsonl"
    if PROCMOND.exists():
        p = subprocess.run([str(PROCMOND), "--once", "--no-hash"], capture_output=True,
                           timeout=60)
        if p.returncode == 0 and p.stdout.strip():
            snap.write_bytes(p.stdout)
    if not snap.exists():
        snap.write_text(proc_snapshot_lines())
    subprocess.run([str(FILL), str(d / "events.db"), "--jsonl", str(snap), "--alerts", "60",
                    "--span-h", "6"], check=True, capture_output=True, timeout=60)
    return d


# ---- global options and errors ------------------------------------------------


def test_help_fits_80_columns_and_version():
    need_cli()
    p = run("--help", check=0)
    assert "Usage: daemoneye-cli" in p.stdout
    for cmd in ("query", "shell", "alerts", "processes", "rules", "health", "stats", "config"):
        assert re.search(rf"^  {cmd}\s", p.stdout, re.M), cmd
    assert max(len(line) for line in p.stdout.splitlines()) <= 80
    v = run("--version", check=0)
    assert re.match(r"daemoneye-cli \d+\.\d+\.\d+", v.stdout)
    for cmd in ("query", "shell", "alerts", "processes", "rules", "health", "stats", "config"):
        sub = run(cmd, "--help", check=0)
        assert re.search(rf"daemoneye-cli (\[OPTIONS\] )?{cmd}", sub.stdout), cmd
        assert max(len(line) for line in sub.stdout.splitlines()) <= 80, cmd
    assert "--since" in run("alerts", "--help").stdout


@pytest.mark.parametrize("argv", [
    ["--bogus", "stats"],
    ["--format", "xml", "stats"],
    ["--log-level", "loud", "stats"],
    ["frobnicate"],
    [],
    ["alerts", "--since", "yesterday"],
    ["alerts", "--severity", "urgent"],
    ["alerts", "--limit", "0"],
    ["processes", "--pid", "abc"],
])
def test_bad_usage_exits_2_with_a_message(argv, store):
    p = run(*argv, data=store)
    assert p.returncode == 2, (argv, p.stdout, p.stderr)
    assert p.stderr.strip(), argv


def test_missing_store_exits_1_naming_it(tmp_path):
    need_cli()
    for args in (["stats"], ["query", "SELECT 1 AS one"], ["alerts"], ["processes"]):
        p = run(*args, data=tmp_path / "nowhere")
        assert p.returncode == 1, args
        assert "no event store" in p.stderr and str(tmp_path / "nowhere") in p.stderr


def test_data_dir_precedence(store, tmp_path):
    """--data-dir > DAEMONEYE_AGENT_DATA_DIR > the configuration file."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"agent:\n  data_dir: {tmp_path / 'from-config'}\n")
    sql = ["--format", "json", "query", "SELECT count(*) AS n FROM alerts"]
    p = run("--config", cfg, *sql)
    assert p.returncode == 1 and "from-config" in p.stderr
    p = run("--config", cfg, *sql, env={"DAEMONEYE_AGENT_DATA_DIR": str(store)})
    assert p.returncode == 0 and json.loads(p.stdout) == [{"n": 60}]
    p = run("--config", cfg, "--data-dir", tmp_path / "from-flag", *sql,
            env={"DAEMONEYE_AGENT_DATA_DIR": str(store)})
    assert p.returncode == 1 and "from-flag" in p.stderr
    # The socket follows the data dir unless given.
    p = run("--data-dir", tmp_path / "dd", "health")
    assert p.returncode == 1 and str(tmp_path / "dd" / "daemoneye.sock") in p.stderr


@pytest.mark.root
def test_unreadable_store_says_permission_denied(store, tmp_path):
    d = tmp_path / "private"
    d.mkdir()
    (d / "events.db").write_bytes((store / "events.db").read_bytes())
    os.chmod(tmp_path, 0o755)
    for dmode, fmode in ((0o700, 0o644), (0o755, 0o600)):
        os.chmod(d, dmode)
        os.chmod(d / "events.db", fmode)
        p = subprocess.run([str(CLI), "--data-dir", str(d), "stats"], capture_output=True,
                           text=True, user=4321, group=4321, extra_groups=[], timeout=30)
        assert p.returncode == 1 and "permission denied" in p.stderr, (oct(dmode), p.stderr)


# ---- query -----------------------------------------------------------------------


def test_query_json_and_csv_agree(store):
    sql = "SELECT pid, ppid, name, user_name, start_time FROM live_processes ORDER BY pid"
    rows = json.loads(run("--format", "json", "query", sql, data=store, check=0).stdout)
    assert isinstance(rows, list) and len(rows) > 5
    assert all(isinstance(r["pid"], int) and isinstance(r["start_time"], int) for r in rows)
    assert 1 in [r["pid"] for r in rows]
    # Global options may also follow the command.
    c = run("query", sql, "--format", "csv", data=store, check=0).stdout
    parsed = list(csv.reader(io.StringIO(c, newline="")))
    assert parsed[0] == ["pid", "ppid", "name", "user_name", "start_time"]
    assert len(parsed) - 1 == len(rows)
    assert [int(r[0]) for r in parsed[1:]] == [r["pid"] for r in rows]
    assert [r[2] for r in parsed[1:]] == [r["name"] for r in rows]
    # `query -` reads the statement from stdin.
    again = json.loads(run("--format", "json", "query", "-", data=store, stdin=sql,
                           check=0).stdout)
    assert again == rows


def test_query_csv_quotes_awkward_text(store):
    sql = "SELECT 'a,b' AS x, 'say \"hi\"' AS y, 'two' || char(10) || 'lines' AS z, NULL AS n"
    out = run("--format", "csv", "query", sql, data=store, check=0).stdout
    assert out.endswith("\r\n")
    rows = list(csv.reader(io.StringIO(out, newline="")))
    assert rows == [["x", "y", "z", "n"], ["a,b", 'say "hi"', "two\nlines", ""]]
    j = json.loads(run("--format", "json", "query", sql, data=store, check=0).stdout)
    assert j == [{"x": "a,b", "y": 'say "hi"', "z": "two\nlines", "n": None}]


def test_query_csv_neutralises_formulas(store):
    """OWASP CSV injection: a cell starting with = + - @ TAB or CR is a formula to a
    spreadsheet; the csv output quotes it behind a single quote. Numbers stay numbers."""
    sql = ("SELECT '=cmd|'' /C calc''!A0' AS name, '+1+2' AS p, '@SUM(A1)' AS a, "
           "char(9) || 'tab' AS t, char(13) || 'cr' AS c, -5 AS neg, '-2+3' AS m, "
           "-1.5 AS r, 'a=b' AS plain")
    out = run("--format", "csv", "query", sql, data=store, check=0).stdout
    rows = list(csv.reader(io.StringIO(out, newline="")))
    assert rows[1] == ["'=cmd|' /C calc'!A0", "'+1+2", "'@SUM(A1)", "'\ttab", "'\rcr", "-5",
                       "'-2+3", "-1.5", "a=b"]
    assert "\"'=cmd|' /C calc'!A0\"" in out
    # A process with that name in the store shows up the same way.
    j = json.loads(run("--format", "json", "query", sql, data=store, check=0).stdout)
    assert j[0]["name"] == "=cmd|' /C calc'!A0", "json is not altered"


def test_query_json_escapes_everything(store):
    sql = ("SELECT 'tab' || char(9) || 'bell' || char(7) || 'q\"b\\' AS s, "
           "'Grüße 你好' AS u, CAST(x'41ff42' AS TEXT) AS bad, 1.5 AS r, "
           "9007199254740993 AS big")
    out = run("--format", "json", "query", sql, data=store, check=0).stdout
    row = json.loads(out)[0]
    assert row["s"] == 'tab\tbell\x07q"b\\'
    assert row["u"] == "Grüße 你好"
    assert row["bad"] == "A?B"  # not UTF-8: sanitized, the document stays valid JSON
    assert row["r"] == 1.5 and row["big"] == 9007199254740993


def test_query_table_is_aligned(store):
    out = run("query", "SELECT pid, name FROM live_processes ORDER BY pid LIMIT 5",
              data=store, check=0).stdout.splitlines()
    assert out[0].split() == ["pid", "name"]
    assert len(out) == 6
    # pid is numeric: right-aligned under its header.
    assert len({line.index(line.split()[0]) + len(line.split()[0]) for line in out}) == 1


@pytest.mark.parametrize("sql,word", [
    ("DELETE FROM alerts", "DELETE"),
    ("INSERT INTO alerts(alert_id) VALUES ('x')", "INSERT"),
    ("DROP TABLE alerts", "not allowed"),
    ("ATTACH DATABASE '/tmp/x.db' AS x", "ATTACH"),
    ("PRAGMA journal_mode", "PRAGMA"),
    ("SELECT load_extension('x')", "load_extension"),
])
def test_query_that_writes_is_refused_with_exit_2(store, sql, word):
    p = run("query", sql, data=store)
    assert p.returncode == 2, (sql, p.stderr)
    assert "refused" in p.stderr and word.lower() in p.stderr.lower(), p.stderr
    # And nothing changed.
    n = json.loads(run("--format", "json", "query", "SELECT count(*) AS n FROM alerts",
                       data=store, check=0).stdout)
    assert n == [{"n": 60}]


def test_query_runs_while_the_store_is_written(store, tmp_path):
    """A WAL reader: the CLI reads while a writer keeps a transaction going."""
    d = tmp_path / "live"
    d.mkdir()
    subprocess.run([str(FILL), str(d / "events.db"), "--synthetic", "2000", "--live", "50"],
                   check=True, capture_output=True)
    writer = subprocess.Popen([str(FILL), str(d / "events.db"), "--synthetic", "60000",
                               "--live", "100"], stdout=subprocess.DEVNULL)
    try:
        seen = []
        for _ in range(5):
            p = run("--format", "json", "query", "SELECT count(*) AS n FROM process_events",
                    data=d, check=0)
            seen.append(json.loads(p.stdout)[0]["n"])
        assert seen[0] >= 2000 and seen == sorted(seen)
    finally:
        writer.wait(120)


# ---- alerts ----------------------------------------------------------------------


def alerts_json(store, *args):
    return json.loads(run("--format", "json", "alerts", *args, data=store, check=0).stdout)


def test_alerts_json_are_spec_objects_newest_first(store):
    al = alerts_json(store, "--limit", "1000")
    assert len(al) == 60
    for a in al:
        for k in ("alert_id", "timestamp", "rule_id", "severity", "title", "process", "match"):
            assert k in a, k
        assert a["severity"] in SEVERITIES
    stamps = [a["timestamp"] for a in al]
    assert stamps == sorted(stamps, reverse=True)


def test_alerts_filters(store):
    high = alerts_json(store, "--severity", "high", "--limit", "1000")
    assert high and {a["severity"] for a in high} <= {"high", "critical"}
    assert len(high) == len([a for a in alerts_json(store, "--limit", "1000")
                             if a["severity"] in ("high", "critical")])
    rule = alerts_json(store, "--rule", "reverse-shell", "--limit", "1000")
    assert rule and {a["rule_id"] for a in rule} == {"reverse-shell"}
    assert len(alerts_json(store, "--limit", "3")) == 3
    recent = alerts_json(store, "--since", "1h", "--limit", "1000")
    # 60 alerts spread over 6 hours: about 10 in the last hour.
    assert 5 <= len(recent) <= 15
    assert alerts_json(store, "--rule", "no-such-rule'; DROP TABLE alerts; --") == []
    assert len(alerts_json(store, "--since", "100000000d", "--limit", "1000")) == 60


def test_alerts_csv_and_table(store):
    out = run("--format", "csv", "alerts", "--limit", "1000", data=store, check=0).stdout
    rows = list(csv.DictReader(io.StringIO(out, newline="")))
    assert len(rows) == 60
    assert set(rows[0]) >= {"alert_id", "timestamp", "severity", "rule_id", "pid", "title"}
    table = run("alerts", "--limit", "5", data=store, check=0).stdout
    assert not ANSI.search(table), "no colour when piped"
    assert re.search(r"\b(just now|\d+[smhd] ago)\b", table)


def test_alerts_colour_only_on_a_tty_without_no_color(store):
    rc, out = run_tty("alerts", "--limit", "20", data=store)
    assert rc == 0 and ANSI.search(out), out
    rc, out = run_tty("alerts", "--limit", "20", data=store, env={"NO_COLOR": "1"})
    assert rc == 0 and not ANSI.search(out), out


def test_alerts_show(store):
    a = alerts_json(store, "--limit", "1")[0]
    one = json.loads(run("--format", "json", "alerts", "show", a["alert_id"], data=store,
                         check=0).stdout)
    assert one["alert_id"] == a["alert_id"] and one["process"] == a["process"]
    # The table shows 12 characters of the id; that prefix is enough.
    t = run("alerts", "show", a["alert_id"][:12], data=store, check=0).stdout
    assert f"alert_id: {a['alert_id']}" in t
    p = run("alerts", "show", "does-not-exist", data=store)
    assert p.returncode == 1 and "no alert" in p.stderr


# ---- processes --------------------------------------------------------------------


def test_processes_list_and_pid(store):
    rows = json.loads(run("--format", "json", "processes", data=store, check=0).stdout)
    pids = {r["pid"] for r in rows}
    assert 1 in pids
    one = json.loads(run("--format", "json", "processes", "--pid", "1", data=store,
                         check=0).stdout)
    assert one["pid"] == 1 and "command_line" in one and "executable_path" in one
    out = run("--format", "csv", "processes", "--pid", "1", data=store, check=0).stdout
    rows = list(csv.DictReader(io.StringIO(out, newline="")))
    assert len(rows) == 1 and rows[0]["pid"] == "1"
    p = run("processes", "--pid", "2147483647", data=store)
    assert p.returncode == 1 and "no process" in p.stderr


def check_tree(nodes, parent=None):
    n = 0
    for node in nodes:
        if parent is not None:
            assert node["ppid"] == parent, node
        n += 1 + check_tree(node["children"], node["pid"])
    return n


def test_processes_tree_json_and_csv(store):
    live = json.loads(run("--format", "json", "query", "SELECT pid FROM live_processes",
                          data=store, check=0).stdout)
    tree = json.loads(run("--format", "json", "processes", "--tree", data=store,
                          check=0).stdout)
    assert check_tree(tree) == len(live), "every process exactly once"
    init = [t for t in tree if t["pid"] == 1]
    assert init and init[0]["children"], "pid 1 has children"
    out = run("--format", "csv", "processes", "--tree", data=store, check=0).stdout
    rows = list(csv.DictReader(io.StringIO(out, newline="")))
    assert len(rows) == len(live)
    sub = json.loads(run("--format", "json", "processes", "--tree", "--pid", "1",
                         data=store, check=0).stdout)
    assert len(sub) == 1 and sub[0]["pid"] == 1


def test_processes_tree_draws_and_fits_the_terminal(store):
    out = run("processes", "--tree", data=store, check=0).stdout
    assert "├─ " in out or "└─ " in out
    assert re.search(r"^1 \S+ ", out, re.M), "pid 1 is a root, drawn at column 0"
    rc, out = run_tty("processes", "--tree", data=store, cols=50)
    assert rc == 0
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert lines and max(len(ln) for ln in lines) <= 50, max(lines, key=len)
    assert any(ln.endswith("…") for ln in lines)


# ---- shell -----------------------------------------------------------------------


def test_shell_through_a_pipe(store):
    script = (".tables\n"
              ".schema alerts\n"
              ".schema detection_rules\n"
              "SELECT count(*) AS n\n  FROM alerts;\n"
              ".mode csv\n"
              "SELECT pid, name FROM live_processes WHERE pid = 1;\n"
              ".mode json\n"
              "SELECT rule_id FROM alerts LIMIT 1;\n"
              ".help\n"
              ".quit\n"
              "SELECT 'never reached';\n")
    p = run("shell", data=store, stdin=script, check=0)
    out = p.stdout
    for t in ("alerts", "live_processes", "process_events", "processes"):
        assert re.search(rf"^{t}$", out, re.M), t
    assert "alerts (alert_id, timestamp" in out
    assert "detection_rules (id, name" in out, "columns of an empty table too"
    assert re.search(r"^\s*n\n\s*60$", out, re.M)
    assert "pid,name\r\n1," in out
    j = out[out.index("[\n{"):]
    j = j[:j.index("\n]") + 2]
    assert json.loads(j)[0]["rule_id"]
    assert ".mode table|json|csv" in out and "never reached" not in out


def test_shell_errors_set_the_exit_code(store):
    p = run("shell", data=store, stdin="DELETE FROM alerts;\nSELECT 1 AS one;\n")
    assert p.returncode == 2 and "DELETE" in p.stderr and "one" in p.stdout
    p = run("shell", data=store, stdin="SELECT 2 AS two\n")  # unterminated at EOF: runs
    assert p.returncode == 0 and "two" in p.stdout


def test_shell_interactive_history_and_completion(store, tmp_path):
    """Drives the libedit shell on a pseudo-terminal: tab completes a table
    name, and the history file is written."""
    need_cli()
    env = dict(os.environ, HOME=str(tmp_path), TERM="xterm")
    env.pop("NO_COLOR", None)
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(str(CLI), [str(CLI), "--data-dir", str(store), "shell"], env)
    out = b""

    def read_until(marker, timeout=10):
        nonlocal out
        end = time.monotonic() + timeout
        while marker not in out and time.monotonic() < end:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                try:
                    out += os.read(fd, 65536)
                except OSError:
                    break
        return marker in out

    try:
        assert read_until(b"daemoneye> ")
        os.write(fd, b"SELECT count(*) AS cnt FROM live_proc\t")
        time.sleep(0.5)
        os.write(fd, b";\r")
        assert read_until(b"cnt\r\n"), out
        assert not read_until(b"no such table", 0.5), out
        os.write(fd, b".quit\r")
        os.waitpid(pid, 0)
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.close(fd)
    hist = tmp_path / ".daemoneye_history"
    assert hist.exists() and "live_processes" in hist.read_text()
    assert hist.stat().st_mode & 0o077 == 0, "history is private"


# ---- stats, config, rules ---------------------------------------------------------


def test_stats(store):
    s = json.loads(run("--format", "json", "stats", data=store, check=0).stdout)
    text = json.dumps(s)
    assert "alerts" in text and "process_events" in text
    n = json.loads(run("--format", "json", "query", "SELECT count(*) AS n FROM process_events",
                       data=store, check=0).stdout)[0]["n"]
    assert str(n) in text
    out = run("--format", "csv", "stats", data=store, check=0).stdout
    rows = list(csv.reader(io.StringIO(out, newline="")))
    assert rows[0] == ["key", "value"] and len(rows) > 3
    table = run("stats", data=store, check=0).stdout
    assert "alerts" in table
    assert re.search(r"_ms: \d{4}-\d\d-\d\dT[0-9:.]+Z \((just now|\d+[smhd] ago)\)", table), table


def test_config_check(tmp_path):
    need_cli()
    good = tmp_path / "good.yaml"
    good.write_text(f"agent:\n  data_dir: {tmp_path}\n  retention_days: 7\n")
    p = run("config", "check", good, check=0)
    assert "OK" in p.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("agent:\n  data_dir: /x\n  no_such_key: 1\n")
    p = run("config", "check", bad)
    assert p.returncode == 2
    assert f"{bad}:3" in p.stderr and "no_such_key" in p.stderr, p.stderr
    p = run("config", "check", tmp_path / "absent.yaml")
    assert p.returncode in (1, 2) and "absent.yaml" in p.stderr
    assert run("config", "frob").returncode == 2


GOOD_RULE = """id: init-seen
name: pid 1 is running
severity: low
category: test
sql: |
  SELECT pid, name FROM processes WHERE pid = 1
"""
BAD_RULES = {
    "writes.yaml": ("id: writes\nname: w\nseverity: high\nsql: DELETE FROM processes\n",
                    ":4:", "DELETE"),
    "badsev.yaml": ("id: badsev\nname: s\nseverity: urgent\nsql: SELECT pid FROM processes\n",
                    "badsev.yaml:", "severity"),
    "nopid.yaml": ("id: nopid\nname: n\nseverity: low\nsql: SELECT name FROM processes\n",
                   "nopid.yaml", "pid"),
}


def test_rules_validate(tmp_path):
    need_cli()
    good = tmp_path / "good.yaml"
    good.write_text(GOOD_RULE)
    p = run("rules", "validate", good, check=0)
    assert "OK" in p.stdout and "init-seen" in p.stdout
    paths = []
    for name, (text, where, word) in BAD_RULES.items():
        f = tmp_path / name
        f.write_text(text)
        paths.append(f)
        p = run("rules", "validate", f)
        assert p.returncode == 2, (name, p.stderr)
        assert f"{f}" in p.stderr and where in p.stderr and word in p.stderr, p.stderr
    # Several files: every bad one is named, the good one still passes, exit 2.
    p = run("rules", "validate", good, *paths)
    assert p.returncode == 2 and "OK" in p.stdout
    assert all(str(f) in p.stderr for f in paths)
    # A directory validates its *.yaml files.
    p = run("rules", "validate", tmp_path)
    assert p.returncode == 2 and "good.yaml: OK" in p.stdout
    assert run("rules", "validate").returncode == 2
    assert run("rules", "validate", tmp_path / "absent.yaml").returncode in (1, 2)


def test_rules_test_runs_over_the_store(store, tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(GOOD_RULE)
    rows = json.loads(run("--format", "json", "rules", "test", good, data=store,
                          check=0).stdout)
    assert rows and {r["pid"] for r in rows} == {1}
    bad = tmp_path / "writes.yaml"
    bad.write_text(BAD_RULES["writes.yaml"][0])
    assert run("rules", "test", bad, data=store).returncode == 2


def test_rules_list_from_the_rule_dirs(tmp_path):
    need_cli()
    rd = tmp_path / "rules"
    rd.mkdir()
    (rd / "good.yaml").write_text(GOOD_RULE)
    (rd / "writes.yaml").write_text(BAD_RULES["writes.yaml"][0])
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"agent:\n  data_dir: {tmp_path / 'nostore'}\n"
                   f"detection:\n  rules_dirs: [{rd}]\n")
    p = run("--config", cfg, "--format", "json", "rules", "list", check=0)
    rules = json.loads(p.stdout)
    assert [r["id"] for r in rules] == ["init-seen"]
    assert "writes.yaml" in p.stderr


def test_rules_list_falls_back_to_the_dirs_when_the_agent_loaded_none(store, tmp_path):
    rd = tmp_path / "rules"
    rd.mkdir()
    (rd / "good.yaml").write_text(GOOD_RULE)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"detection:\n  rules_dirs: [{rd}]\n")
    p = run("--config", cfg, "--format", "csv", "rules", "list", data=store, check=0)
    rows = list(csv.DictReader(io.StringIO(p.stdout, newline="")))
    assert [r["id"] for r in rows] == ["init-seen"]
    assert run("rules", "frob", data=store).returncode == 2


# ---- health ----------------------------------------------------------------------


def test_health_without_an_agent_exits_1(tmp_path):
    need_cli()
    p = run("--socket", tmp_path / "none.sock", "health")
    assert p.returncode == 1
    assert "not running" in p.stderr and "none.sock" in p.stderr


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def pb_varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def pb_fields(buf):
    """Decodes varint (wire 0) and length-delimited (wire 2) fields."""
    i, out = 0, {}
    while i < len(buf):
        key, shift = 0, 0
        while True:
            b = buf[i]; i += 1
            key |= (b & 0x7F) << shift; shift += 7
            if not b & 0x80:
                break
        field, wire = key >> 3, key & 7
        val, shift = 0, 0
        while True:
            b = buf[i]; i += 1
            val |= (b & 0x7F) << shift; shift += 7
            if not b & 0x80:
                break
        if wire == 2:
            out[field] = buf[i:i + val]; i += val
        else:
            out[field] = val
    return out


def frame(ftype, payload):
    tf = struct.pack("<HH", ftype, 0)
    return struct.pack("<I", len(payload)) + tf + struct.pack("<I", crc32c(tf + payload)) + payload


IPC_CONTROL_REQUEST, IPC_CONTROL_RESPONSE = 9, 10


def fake_agent(path, status, body, seen):
    """Answers one ControlRequest the way the agent's control.c does."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if path.exists():
        path.unlink()
    srv.bind(str(path))
    srv.listen(1)

    def serve():
        conn, _ = srv.accept()
        hdr = conn.recv(12, socket.MSG_WAITALL)
        n, ftype, flags, crc = struct.unpack("<IHHI", hdr)
        payload = conn.recv(n, socket.MSG_WAITALL)
        assert crc == crc32c(hdr[4:8] + payload)
        seen.append((ftype, pb_fields(payload)))
        text = json.dumps(body).encode()
        resp = b"\x08" + pb_varint(status) + b"\x12" + pb_varint(len(text)) + text
        conn.sendall(frame(IPC_CONTROL_RESPONSE, resp))
        conn.close()
        srv.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t


def test_health_speaks_the_control_frames(tmp_path):
    need_cli()
    sock = tmp_path / "agent.sock"
    body = {"state": "running", "uptime_s": 42,
            "collectors": [{"id": "procmond", "source": "ebpf", "restarts": 0}],
            "sinks": [{"type": "stdout", "delivered": 7, "spooled": 0, "failed": 0},
                      {"type": "webhook", "delivered": 9, "spooled": 3, "failed": 1}]}
    seen = []
    t = fake_agent(sock, 0, body, seen)
    p = run("--socket", sock, "--format", "json", "health", check=0)
    t.join(5)
    assert seen and seen[0][0] == IPC_CONTROL_REQUEST and seen[0][1][1] == b"health"
    assert json.loads(p.stdout) == body
    # The table form names every part.
    seen = []
    t = fake_agent(sock, 0, body, seen)
    out = run("--socket", sock, "health", check=0).stdout
    t.join(5)
    assert "state: running" in out and "procmond" in out
    assert "  - type: stdout\n    delivered: 7" in out
    assert "  - type: webhook\n    delivered: 9\n    spooled: 3" in out
    # csv: one dotted key per value.
    t = fake_agent(sock, 0, body, [])
    rows = dict(csv.reader(io.StringIO(run("--socket", sock, "--format", "csv", "health",
                                           check=0).stdout, newline="")))
    t.join(5)
    assert rows["sinks[1].spooled"] == "3" and rows["collectors[0].id"] == "procmond"
    # An error answer is exit 1 with the agent's reason.
    t = fake_agent(sock, 2, {"error": "unknown command"}, [])
    p = run("--socket", sock, "health")
    t.join(5)
    assert p.returncode == 1 and "unknown command" in p.stderr


@pytest.mark.root
def test_health_of_a_real_agent(tmp_path, datadir, daemons):
    """The real agent (with procmond) fills the store and answers health; then
    every store command works on what it wrote."""
    if not AGENT.exists() or not PROCMOND.exists():
        pytest.skip("daemoneye-agent or procmond is not built yet")
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "init.yaml").write_text(GOOD_RULE)
    os.chmod(rules, 0o755)
    os.chmod(rules / "init.yaml", 0o644)
    sock = datadir / "daemoneye.sock"
    agent = daemons.start([AGENT, "--data-dir", datadir, "--socket", sock,
                           "--rules-dir", rules])

    def healthy():
        if agent.poll() is not None:
            return "exited"
        p = run("--socket", sock, "--format", "json", "health")
        # Ready once the collector has registered.
        return p if p.returncode == 0 and json.loads(p.stdout).get("collectors") else None

    p = wait_for(healthy, 20)
    assert p not in (None, "exited"), agent.stderr.read() if agent.poll() is not None else p
    h = json.loads(p.stdout)
    assert h["state"] and "collectors" in h
    assert "procmond" in json.dumps(h["collectors"])
    table = run("--socket", sock, "health", check=0).stdout
    assert "state:" in table and "procmond" in table

    # Within one health-check round (5 s) the collector reports its source.
    def sourced():
        p = run("--socket", sock, "--format", "json", "health")
        c = json.loads(p.stdout)["collectors"][0] if p.returncode == 0 else {}
        return c if c.get("source") else None
    c = wait_for(sourced, 15)
    assert c, "health never named procmond's event source"
    assert c["source"] in ("ebpf", "netlink", "poll") and c["drops"] >= 0
    assert c["events_per_s"] >= 0
    # The store it fills answers the other commands.
    def live():
        p = run("--format", "json", "query", "SELECT count(*) AS n FROM live_processes",
                data=datadir)
        return p.returncode == 0 and json.loads(p.stdout)[0]["n"] > 5
    assert wait_for(live, 30)
    ids = [r["id"] for r in json.loads(run("--format", "json", "rules", "list",
                                           data=datadir, check=0).stdout)]
    assert ids == ["init-seen"]
    tree = json.loads(run("--format", "json", "processes", "--tree", data=datadir,
                          check=0).stdout)
    assert any(t["pid"] == 1 for t in tree)
    # The agent itself is in procmond's snapshot.
    mine = wait_for(lambda: run("--format", "json", "processes", "--pid", str(agent.pid),
                                data=datadir).stdout, 15)
    assert mine and json.loads(mine)["pid"] == agent.pid
    stats = json.loads(run("--format", "json", "stats", data=datadir, check=0).stdout)
    assert stats
    # A stranger (not root, not the agent's user or group) gets a clear refusal:
    # by the socket's mode, or, when the mode lets it in, by the agent itself.
    def as_stranger():
        return subprocess.run([str(CLI), "--socket", str(sock), "health"], capture_output=True,
                              text=True, user=4321, group=4321, extra_groups=[], timeout=30)
    p = as_stranger()
    assert p.returncode == 1 and "permission denied" in p.stderr, p.stderr
    os.chmod(sock, 0o666)
    p = as_stranger()
    assert p.returncode == 1 and "admits only root" in p.stderr, p.stderr
    daemons.stop(agent)
    p = run("--socket", sock, "health")
    assert p.returncode == 1 and "not running" in p.stderr


# ---- bash completion ----------------------------------------------------------


COMPLETION = Path(__file__).resolve().parents[2] / "contrib" / "bash-completion" / "daemoneye-cli"


def complete(*words):
    script = (f"source {COMPLETION}; COMP_WORDS=(\"$@\"); COMP_CWORD=$(($# - 1)); "
              "_daemoneye_cli; printf '%s\\n' \"${COMPREPLY[@]}\"")
    p = subprocess.run(["bash", "-c", script, "_", *words], capture_output=True, text=True,
                       check=True)
    return sorted(w for w in p.stdout.split("\n") if w)


def test_bash_completion():
    assert complete("daemoneye-cli", "al") == ["alerts"]
    assert complete("daemoneye-cli", "--format", "") == ["csv", "json", "table"]
    assert complete("daemoneye-cli", "--format", "json", "rules", "") == [
        "list", "test", "validate"]
    assert complete("daemoneye-cli", "alerts", "--severity", "h") == ["high"]
    assert "verify" in complete("daemoneye-cli", "ledger", "")
    # Every command of the table is offered.
    need_cli()
    listed = re.findall(r"^  (\w+)\s", run("--help").stdout, re.M)
    assert set(listed) <= set(complete("daemoneye-cli", ""))
