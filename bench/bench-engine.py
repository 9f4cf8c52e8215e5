#!/usr/bin/env python3
"""The engine's CPU per event under a fixed, repeatable load.

bench-system-cpu.py measures the whole system under real execs, but how the
load reaches the engine (frames, and so store transactions and rule runs)
varies from run to run with procmond's timing and whatever else the machine
runs. Here the real agent runs with the bundled rule pack and a file sink but
no procmond: `bench-pipeline feed` registers as a collector and sends the
events of EXECS short-lived processes (a start and its stop each, shaped like
procmond's eBPF events) in frames of a fixed size at a fixed rate, and waits
for the last ack. For each frame size it prints the engine's CPU time (utime
+ stime of the engine process) as CPU-seconds per 1,000 execs, the figure
bench-system-cpu.py reports for the engine, and as microseconds per event.
Needs root (the agent drops privileges). Bounded: about 10 s per frame size.
Environment: DE_BENCH_ENGINE_EXECS (default 8000), DE_BENCH_ENGINE_RATE
(events/s, default 2000: 1,000 exec/s), DE_BENCH_ENGINE_FRAMES (frame sizes,
default "8,16,64,256").
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import cpu_s, proc_stats, start_agent

TOP = Path(__file__).resolve().parents[1]
BUILD = Path(os.environ.get("DE_BUILD_DIR", TOP / "build"))
EXECS = int(os.environ.get("DE_BENCH_ENGINE_EXECS", "8000"))
RATE = int(os.environ.get("DE_BENCH_ENGINE_RATE", "2000"))
FRAMES = [int(x) for x in os.environ.get("DE_BENCH_ENGINE_FRAMES", "8,16,64,256").split(",")]


def engine_pid(agent_pid):
    for pid, comm, f in proc_stats():
        if int(f[1]) == agent_pid and "daemoneye-agent" in comm:
            return pid
    return None


def main():
    if os.geteuid() != 0:
        print("bench-engine: needs root (the agent drops privileges); skipped")
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="bench-engine-", dir="/tmp"))
    extra = "collectors:\n  - { id: feeder, spawn: false }\n"
    agent, _ = start_agent(tmp, TOP / "rules", 0.5, extra, wait_collector=False)
    sock = tmp / "data" / "daemoneye.sock"
    rc = 0
    try:
        eng = engine_pid(agent.pid)
        if eng is None:
            print("bench-engine: no engine process")
            return 1
        print(f"bench-engine: {EXECS} execs ({2 * EXECS} events) at {RATE} events/s per run,"
              " bundled rule pack, file sink")
        for per in FRAMES:
            c0 = cpu_s(eng)
            r = subprocess.run([BUILD / "bench/bench-pipeline", "feed", sock, str(EXECS),
                                str(per), str(RATE)], stderr=subprocess.PIPE, text=True)
            time.sleep(0.3)
            d = cpu_s(eng) - c0
            if r.returncode != 0:
                print(f"  frames of {per}: feed failed: {r.stderr.strip()}")
                rc = 1
                continue
            print(f"  frames of {per:4d} events: engine {d:.2f} CPU-s = {d / (EXECS / 1000):.3f}"
                  f" CPU-s per 1,000 execs, {d / (2 * EXECS) * 1e6:.1f} us per event")
    finally:
        os.killpg(agent.pid, signal.SIGTERM)
        agent.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
