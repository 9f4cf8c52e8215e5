#!/usr/bin/env python3
"""End-to-end pipeline benchmark: procmond -> agent -> SQLite.

Starts the real agent (which spawns procmond) in a temporary directory with no
rules, then runs bench-pipeline's spawner at ~1,000 exec/s and at the fastest
rate one spawner sustains here. The first row of each marked exec (any event type) is looked for in the
store (polled every 5 ms; that is the resolution of the latency), giving
events/s committed and exec -> row committed latency p50/p99. Then the WAL
figures (bench-pipeline wal) beside their write+fdatasync / read floors.
Needs root (procmond's collectors). Bounded: a few seconds per phase.
"""
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from benchlib import start_agent

TOP = Path(__file__).resolve().parents[1]
BUILD = Path(os.environ.get("DE_BUILD_DIR", TOP / "build"))
WAL_N = int(os.environ.get("DE_BENCH_WAL_RECORDS", "1000000"))


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p / 100))] if v else float("nan")


def run_phase(db, rate, seconds, label, tmp):
    marker = "bp" + uuid.uuid4().hex[:8]
    forks_file = tmp / f"{marker}.txt"
    with open(forks_file, "w") as fo:
        spawner = subprocess.Popen([BUILD / "bench/bench-pipeline", "spawn", str(rate),
                                    str(seconds), marker, BUILD / "bench/burst-child"],
                                   stdout=fo, stderr=subprocess.PIPE, text=True)
    seen, observed = {}, {}
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    last_id = c.execute("SELECT coalesce(max(id), 0) FROM process_events").fetchone()[0]
    t_start = time.time()
    forks, deadline = None, None
    while True:
        now_ms = time.time() * 1000
        for rid, cmd, ctime in c.execute("SELECT id, command_line, collection_time FROM "
                                         "process_events WHERE id > ?", (last_id,)).fetchall():
            last_id = max(last_id, rid)
            parts = (cmd or "").split()
            if len(parts) > 1 and parts[1].startswith(marker + "-") and parts[1] not in seen:
                seen[parts[1]] = now_ms
                observed[parts[1]] = ctime
        if forks is None and spawner.poll() is not None:
            err = spawner.stderr.read().strip()
            forks = dict(line.split() for line in forks_file.read_text().splitlines())
            deadline = time.monotonic() + 20
        if forks is not None and (len(seen) >= len(forks) or time.monotonic() > deadline):
            break
        time.sleep(0.005)
    missing = [m for m in forks if m not in seen]
    other = 0
    for m in missing[:200]:
        other += c.execute("SELECT count(*) > 0 FROM process_events WHERE command_line LIKE ?",
                           (f"%{m}",)).fetchone()[0]
    lat = [seen[m] - int(t) for m, t in forks.items() if m in seen]
    obs = [observed[m] - int(t) for m, t in forks.items() if m in seen and observed[m]]
    com = [seen[m] - observed[m] for m in seen if observed[m]]
    t_last = max(seen.values()) / 1000 if seen else time.time()
    span = max(t_last - t_start, 1e-3)
    print(f"{label}: spawned {len(forks)} ({err}); stored {len(seen)} "
          f"({100.0 * len(seen) / max(1, len(forks)):.1f}%); "
          f"{len(seen) / span:.0f} events/s committed; exec->row p50 {pct(lat, 50):.0f} ms, "
          f"p99 {pct(lat, 99):.0f} ms (5 ms polling); of which exec->procmond's "
          f"collection_time p50 {pct(obs, 50):.0f} / p99 {pct(obs, 99):.0f} ms, then -> row "
          f"p50 {pct(com, 50):.0f} / p99 {pct(com, 99):.0f} ms", flush=True)
    if missing:
        print(f"  {len(missing)} execs never stored; of the first {min(200, len(missing))}, "
              f"{other} appeared later")
    c.close()


def main():
    if os.geteuid() != 0:
        print("bench-pipeline: needs root (procmond); skipped")
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="bench-pipeline-", dir="/tmp"))
    rules = tmp / "rules"
    rules.mkdir()
    os.chmod(rules, 0o755)
    agent, db = start_agent(tmp, rules, 1.0)  # no rules: the pipeline alone
    try:
        run_phase(db, 1000, 5, "at ~1,000 exec/s", tmp)
        run_phase(db, 0, 5, "at max exec/s  ", tmp)
    finally:
        os.killpg(agent.pid, signal.SIGTERM)
        agent.wait(10)
        for line in (tmp / "agent.log").read_text(errors="replace").splitlines():
            if "procmond" in line and ("drop" in line or "lost" in line or "events" in line):
                print("  procmond:", line.split(": ", 2)[-1])
    waldir = tmp / "walbench"
    waldir.mkdir()
    r = subprocess.run([BUILD / "bench/bench-pipeline", "wal", str(WAL_N), waldir])
    shutil.rmtree(tmp, ignore_errors=True)
    return r.returncode


if __name__ == "__main__":
    sys.exit(main())
