#!/usr/bin/env python3
"""Alert latency and sink throughput, each beside its goal or floor.

1. exec -> alert line in the file sink, through the whole system (procmond,
   agent, store, one SQL rule, alert.c, file sink): p50/p99 over N execs.
   Needs root and the built agent; skipped (said so) otherwise. Goal: p99 < 50 ms.
2. alerts_submit -> line in the file sink (tests/tools/alertdrive, store on):
   the alert pipeline's own share of (1).
3. Sink throughput: alerts/s through alert.c and the file sink, beside the
   floor: the same JSON lines written with one write(2) each.

   With --load RATE, (1) runs while bench/burst starts RATE short-lived
   processes per second in the background: the latency under sustained load,
   where procmond's group-commit window stretches (docs/pipeline.md).

Usage: DE_BUILD_DIR=build bench/bench-alert-latency.py [--execs N] [--load RATE]
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]
BUILD = Path(os.environ.get("DE_BUILD_DIR", TOP / "build"))
AGENT = BUILD / "src" / "agent" / "daemoneye-agent"
PROCMOND = BUILD / "src" / "procmond" / "procmond"
ALERTDRIVE = BUILD / "tests" / "unit" / "alertdrive"

RULE = """id: bench-marker
name: Benchmark marker process
description: fires on the benchmark's marker command line (T0000)
severity: low
category: benchmark
enabled: true
sql: |
  SELECT pid, name, command_line FROM processes
  WHERE command_line LIKE '%de-bench-marker-%'
"""


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p / 100))]


def start_load(rate):
    """bench/burst at rate execs/s for at most 10 minutes, in the background."""
    burst, child = BUILD / "bench" / "burst", BUILD / "bench" / "burst-child"
    if not burst.exists() or not child.exists():
        sys.exit(f"--load needs {burst} and {child} built")
    return subprocess.Popen([burst, str(rate * 600), "de-bench-load", child, "4", "0",
                             str(rate)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def stop_load(loader):
    if loader is not None and loader.poll() is None:
        os.killpg(loader.pid, signal.SIGTERM)
        loader.wait(10)


def exec_to_alert(tmp, n, load):
    if os.geteuid() != 0 or not AGENT.exists() or not PROCMOND.exists():
        print("exec->alert: skipped (needs root and a built agent and procmond)")
        return
    data = tmp / "data"
    data.mkdir()
    for p in (tmp, data):
        os.chmod(p, 0o777)
    rules = tmp / "rules"
    rules.mkdir()
    (rules / "bench-marker.yaml").write_text(RULE)
    os.chmod(rules, 0o755)
    out = tmp / "alerts.jsonl"
    cfg = tmp / "agent.yaml"
    cfg.write_text(f"agent:\n  data_dir: {data}\n  startup_timeout_s: 30\n"
                   f"alerting:\n  max_alerts_per_minute: 100000\n"
                   f"  sinks:\n    - {{ type: file, path: {out}, format: json }}\n")
    env = dict(os.environ, DAEMONEYE_PROCMOND_BINARY=str(PROCMOND))
    log = open(tmp / "agent.log", "wb")
    loader = None
    agent = subprocess.Popen([AGENT, "--config", cfg, "--rules-dir", rules, "--log-level",
                              "warn"], env=env, stdout=subprocess.DEVNULL, stderr=log,
                             start_new_session=True)
    try:
        # Warm-up: wait until a marker process alerts at all.
        deadline = time.monotonic() + 30
        seen = 0
        while time.monotonic() < deadline and seen == 0:
            subprocess.run(["/bin/sh", "-c", "sleep 0.2", "de-bench-marker-warmup"])
            seen = out.exists() and out.stat().st_size > 0
        if not seen:
            print("exec->alert: the agent raised no alert within 30 s; see", tmp / "agent.log")
            return
        lat = []
        if load:
            loader = start_load(load)
        if loader:
            time.sleep(1.0)  # let the load settle into its windows
        for i in range(n):
            marker = f"de-bench-marker-{i}"
            pos = out.stat().st_size
            t0 = time.monotonic()
            p = subprocess.Popen(["/bin/sh", "-c", "sleep 0.15", marker])
            got = None
            while time.monotonic() - t0 < 2.0:
                with open(out, "rb") as f:
                    f.seek(pos)
                    chunk = f.read()
                if marker.encode() in chunk:
                    got = time.monotonic()
                    break
                time.sleep(0.0005)
            p.wait()
            if got is not None:
                lat.append((got - t0) * 1000)
        stop_load(loader)
        if not lat:
            print("exec->alert: no alerts measured")
            return
        under = f", under {load} execs/s of load" if load else ""
        print(f"exec->alert (file sink, whole system{under}): n={len(lat)}/{n} "
              f"p50={pct(lat, 50):.1f} ms p99={pct(lat, 99):.1f} ms max={max(lat):.1f} ms "
              f"(goal p99 < 50 ms; SPEC: < 100 ms)")
    finally:
        stop_load(loader)
        os.killpg(agent.pid, signal.SIGTERM)
        try:
            agent.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(agent.pid, signal.SIGKILL)


def drive(cfg, *args):
    p = subprocess.run([str(ALERTDRIVE), "--config", str(cfg), *map(str, args)],
                       capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        sys.exit(f"alertdrive failed: {p.stderr}")
    return p.stdout


def pipeline(tmp):
    if not ALERTDRIVE.exists():
        print(f"alert pipeline: skipped ({ALERTDRIVE} not built)")
        return
    out = tmp / "drive.jsonl"
    cfg = tmp / "drive.yaml"
    cfg.write_text(f"agent:\n  data_dir: {tmp / 'drive-data'}\n"
                   f"alerting:\n  max_alerts_per_minute: 10000000\n"
                   f"  sinks:\n    - {{ type: file, path: {out}, max_bytes: 1GiB }}\n")
    line = drive(cfg, "--count", 2000, "--latency-file", out).strip()
    print(f"submit->file line (alert.c + store + file sink): {line.split(': ', 1)[1]}")
    out.unlink()
    n = 20000
    ours = drive(cfg, "--count", n, "--no-store", "--timing", "--pid-base", 500000)
    floor = drive(cfg, "--count", n, "--floor-out", tmp / "floor.jsonl")
    a = float(re.search(r"= (\d+) alerts/s", ours).group(1))
    b = float(re.search(r"= (\d+) lines/s", floor).group(1))
    print("  " + ours.strip())
    print(f"file sink throughput: {a:,.0f} alerts/s (build, dedup, queue, worker, write) "
          f"vs floor {b:,.0f} lines/s (prebuilt lines, one write each): {a / b:.2f}x")
    print(f"  for scale: max_alerts_per_minute defaults to 600 = 10 alerts/s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--execs", type=int, default=200)
    ap.add_argument("--load", type=int, default=0,
                    help="background execs/s during exec->alert (0: none)")
    ap.add_argument("--no-pipeline", action="store_true",
                    help="measure exec->alert only, not the alert pipeline and sink")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-alert-"))
    try:
        exec_to_alert(tmp, args.execs, args.load)
        if not args.no_pipeline:
            pipeline(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
