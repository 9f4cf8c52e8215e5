#!/usr/bin/env python3
"""bench-burst: how many of a burst of short-lived processes each event source
records, with and without their command line.

bench/burst starts DE_BURST_N (default 10,000) fork+execs of the static
bench/burst-child, each with a unique marker argument, at most
DE_BURST_PARALLEL (default 4) alive at once. Each source runs alone, one after
the other, and gets the same burst:

  ebpf (source)        bench/ebpf-events: source_ebpf_ops alone, JSON lines
  procmond ebpf        procmond --collector ebpf    (when procmond supports it)
  procmond netlink     procmond --collector netlink (when procmond supports it)
  forkstat             Debian forkstat (proc connector + /proc)
  execsnoop            libbpf-tools execsnoop (BPF on the execve syscall)

"recorded" counts burst pids that appear in a source's output, "with argv"
the markers that appear (the command line was captured), "cpu s" the CPU
time the source's process used over the run (start-up and burst). Peers are installed
with apt-get on demand and skipped with a message when unavailable; tracefs is
mounted for execsnoop when it is not (and unmounted afterwards).

Then procmond's CPU under a steady load: DE_BENCH_RATE (1,000) processes/s for
DE_BENCH_RATE_SECS (10; the issue asks 30) seconds, per collector.

DE_BURST_ONLY (e.g. "ebpf,procmond ebpf") runs only the sources whose names
start with one of the comma-separated prefixes.
"""
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
N = int(os.environ.get("DE_BURST_N", "10000"))
PARALLEL = int(os.environ.get("DE_BURST_PARALLEL", "4"))
RATE = int(os.environ.get("DE_BENCH_RATE", "1000"))
RATE_SECS = int(os.environ.get("DE_BENCH_RATE_SECS", "10"))
ONLY = [p for p in os.environ.get("DE_BURST_ONLY", "").split(",") if p]
TRACEFS = Path("/sys/kernel/tracing")


def apt_install(cmd, package):
    """Returns the path of cmd, installing its Debian package quietly if needed."""
    path = shutil.which(cmd) or shutil.which(cmd, path="/usr/sbin:/sbin")
    if path or os.geteuid() != 0 or not shutil.which("apt-get"):
        return path
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    q = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    if subprocess.call(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                        package], **q) != 0:
        subprocess.call(["apt-get", "update", "-qq"], **q)
        subprocess.call(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                         package], **q)
    return shutil.which(cmd) or shutil.which(cmd, path="/usr/sbin:/sbin")


def wait_ready(proc, out, err, ready, timeout=15.0):
    """Waits until ready(stdout_text, stderr_text) or the process exits."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        if ready(out.read_text(errors="replace"), err.read_text(errors="replace")):
            return True
        time.sleep(0.1)
    return False


def burst(prefix, n=N, rate=0):
    """Runs the burst (paced at rate/s when rate is non-zero); returns (set of
    child pids, burst's own summary line)."""
    r = subprocess.run([BUILD / "bench" / "burst", str(n), prefix,
                        BUILD / "bench" / "burst-child", str(PARALLEL), "0", str(rate)],
                       capture_output=True, text=True, check=True)
    return {int(x) for x in r.stdout.split()}, r.stderr.strip()


def measure(name, argv, ready, workdir, stop_sig=signal.SIGINT, drops=None, n=N, rate=0):
    """Runs one source around one burst. Returns a result dict or a skip reason.
    "cpu" is the source's CPU time over the whole run, "burst_cpu" over the
    burst and its drain only."""
    out, err = workdir / f"{name}.out", workdir / f"{name}.err"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        proc = subprocess.Popen([str(a) for a in argv], stdout=fo, stderr=fe,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        if not wait_ready(proc, out, err, ready):
            tail = err.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            return f"did not start: {tail[0][:100]}"
        prefix = f"deburst{os.getpid()}{re.sub(r'[^a-z]', '', name)}{rate}"
        cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
        pids, summary = burst(prefix, n, rate)
        time.sleep(1.5)  # let the source drain what is queued
        cpu, wall = cpu_seconds(proc.pid), time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, stop_sig)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    text = out.read_text(errors="replace")
    seen_pids = {int(t) for t in re.findall(r"\b\d+\b", text)} & pids
    markers = set(re.findall(re.escape(prefix) + r"-(\d+)\b", text))
    res = {"n": len(pids), "pids": len(seen_pids), "argv": len(markers), "burst": summary,
           "cpu": cpu, "burst_cpu": cpu - cpu0, "burst_wall": wall,
           "drops": drops(err.read_text(errors="replace")) if drops else ""}
    return res


def cpu_seconds(pid):
    """User + system CPU seconds the process has used so far."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return float("nan")
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ebpf_drops(stderr):
    m = re.search(r'"drops":(\d+)', stderr)
    return m.group(1) if m else "?"


def procmond_drops(stderr):
    """procmond logs "<source>: N events, M drops" when it stops."""
    m = re.search(r"(\d+) drops", stderr)
    return m.group(1) if m else ""


def procmond_sources():
    exe = BUILD / "src" / "procmond" / "procmond"
    if not exe.exists():
        return [("procmond ebpf", "procmond is not built", None),
                ("procmond netlink", "procmond is not built", None)]
    rows = []
    for coll in ("ebpf", "netlink"):
        argv = [exe, "--collector", coll, "--no-hash", "--log-level", "info"]
        # Standalone procmond prints its first snapshot when it is running.
        rows.append((f"procmond {coll}", (argv, lambda o, e: o.count("\n") > 10),
                     procmond_drops))
    return rows


def main():
    for b in ("burst", "burst-child"):
        if not (BUILD / "bench" / b).exists():
            print(f"bench-burst: {BUILD}/bench/{b} is not built (make build)")
            return 1
    if os.geteuid() != 0:
        print("bench-burst: skipped: needs root (BPF, proc connector)")
        return 0

    sources = []
    ev = BUILD / "bench" / "ebpf-events"
    if ev.exists():
        sources.append(("ebpf (source)", ([ev], lambda o, e: "ready" in e), ebpf_drops))
    else:
        sources.append(("ebpf (source)", "not built (-Debpf=disabled)", None))
    sources += procmond_sources()
    forkstat = apt_install("forkstat", "forkstat")
    if forkstat:
        sources.append(("forkstat", ([forkstat, "-l", "-e", "exec,exit"],
                                     lambda o, e: "Event" in o), None))
    else:
        sources.append(("forkstat", "not installed (apt-get install forkstat)", None))
    mounted = False
    execsnoop = apt_install("execsnoop", "libbpf-tools")
    if execsnoop and not (TRACEFS / "events").exists():
        mounted = subprocess.call(["mount", "-t", "tracefs", "nodev", str(TRACEFS)],
                                  stderr=subprocess.DEVNULL) == 0
    if execsnoop and (TRACEFS / "events").exists():
        sources.append(("execsnoop", (["stdbuf", "-oL", execsnoop],
                                      lambda o, e: "PCOMM" in o), None))
    elif execsnoop:
        sources.append(("execsnoop", "tracefs cannot be mounted", None))
    else:
        sources.append(("execsnoop", "not installed (apt-get install libbpf-tools)", None))

    if ONLY:
        sources = [s for s in sources if any(s[0].startswith(p) for p in ONLY)]
    print(f"burst of {N} short-lived processes (fork+exec of a static binary, "
          f"{PARALLEL} at a time), each source alone")
    print(f"{'source':<18} {'recorded':>9} {'%':>7} {'with argv':>10} {'%':>7} "
          f"{'drops':>6} {'cpu s':>6}  burst")
    try:
        with tempfile.TemporaryDirectory(prefix="de-bench-burst-") as tmp:
            for name, spec, drops in sources:
                if isinstance(spec, str):
                    print(f"{name:<18} skipped: {spec}")
                    continue
                argv, ready = spec
                r = measure(name, argv, ready, Path(tmp), drops=drops)
                if isinstance(r, str):
                    print(f"{name:<18} skipped: {r}")
                    continue
                n = r["n"] or 1
                print(f"{name:<18} {r['pids']:>9} {100.0 * r['pids'] / n:>6.1f}% "
                      f"{r['argv']:>10} {100.0 * r['argv'] / n:>6.1f}% {r['drops']:>6} "
                      f"{r['cpu']:>6.2f}  "
                      f"{r['burst'].removeprefix('burst: ')}", flush=True)
        steady(sources)
    finally:
        if mounted:
            subprocess.call(["umount", str(TRACEFS)])
    return 0


def steady(sources):
    """procmond's CPU while RATE processes/s start and exit for RATE_SECS s."""
    rows = [(name, spec, drops) for name, spec, drops in sources
            if name.startswith("procmond") and not isinstance(spec, str)]
    if not rows:
        return
    print(f"\nsteady load: {RATE}/s short-lived processes for {RATE_SECS} s "
          f"(DE_BENCH_RATE, DE_BENCH_RATE_SECS)")
    print(f"{'source':<18} {'recorded':>9} {'with argv':>10} {'CPU %':>6}  burst")
    with tempfile.TemporaryDirectory(prefix="de-bench-steady-") as tmp:
        for name, (argv, ready), drops in rows:
            r = measure(name, argv, ready, Path(tmp), drops=drops, n=RATE * RATE_SECS,
                        rate=RATE)
            if isinstance(r, str):
                print(f"{name:<18} skipped: {r}")
                continue
            n = r["n"] or 1
            # CPU over the burst and its drain, as a share of one CPU.
            pct = 100.0 * r["burst_cpu"] / r["burst_wall"]
            print(f"{name:<18} {100.0 * r['pids'] / n:>8.1f}% {100.0 * r['argv'] / n:>9.1f}% "
                  f"{pct:>5.1f}%  {r['burst'].removeprefix('burst: ')}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
