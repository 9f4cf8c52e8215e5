"""Shared by the whole-system benchmarks: start the real agent (which spawns
procmond) in a temporary directory and wait until procmond has registered;
read the CPU time and the stat fields of processes."""
import os
import sqlite3
import subprocess
import time
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]
BUILD = Path(os.environ.get("DE_BUILD_DIR", TOP / "build"))
HZ = os.sysconf("SC_CLK_TCK")


def proc_stats():
    """(pid, comm, fields after the comm) of every process in /proc."""
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        yield int(d), stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()


def cpu_s(pid):
    """utime + stime of pid in seconds (0 when gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    f = stat[stat.rindex(")") + 2:].split()
    return (int(f[11]) + int(f[12])) / HZ


def start_agent(tmp, rules, settle_s, extra="", wait_collector=True):
    """Starts daemoneye-agent with data under tmp/data, rules from rules, and a
    JSON file sink at tmp/alerts.jsonl (extra: more configuration text); waits
    for the collector to register (wait_collector false: for the socket only),
    then settle_s more for the first snapshot. Returns (Popen, events.db path)."""
    data = tmp / "data"
    data.mkdir()
    os.chmod(tmp, 0o755)
    os.chmod(data, 0o777)
    cfg = tmp / "agent.yaml"
    cfg.write_text("agent:\n  data_dir: %s\nalerting:\n  sinks:\n"
                   "    - { type: file, path: %s, format: json }\n%s"
                   % (data, tmp / "alerts.jsonl", extra))
    env = dict(os.environ, DAEMONEYE_PROCMOND_BINARY=str(BUILD / "src/procmond/procmond"))
    log = open(tmp / "agent.log", "wb")
    p = subprocess.Popen([BUILD / "src/agent/daemoneye-agent", "--config", cfg, "--rules-dir",
                          rules, "--log-level", "warn"], env=env, stdout=subprocess.DEVNULL,
                         stderr=log, start_new_session=True)
    db = data / "events.db"
    end = time.monotonic() + 20
    while time.monotonic() < end:
        if not wait_collector:
            if (data / "daemoneye.sock").exists():
                break
            time.sleep(0.1)
            continue
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
                if c.execute("SELECT count(*) FROM collector_state").fetchone()[0]:
                    break
        except sqlite3.Error:
            pass
        time.sleep(0.1)
    time.sleep(settle_s)
    return p, db
