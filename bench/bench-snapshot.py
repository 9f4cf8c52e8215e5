#!/usr/bin/env python3
"""Full /proc snapshot cost: procmond vs `ps` vs a floor program.

All figures are CPU time (user + system), not wall clock: the machine is
shared, and CPU time is what a snapshot costs whatever else runs. At each
live-process level (default 1000 and 5000; BENCH_LEVELS="1000,5000,10000"
to change), sleepers are spawned to reach the level, then, interleaved so a
noisy machine hurts every contender alike, medians of:
  floor      bench/snapshot-floor: read stat, status, cmdline and the exe link
             of every process, nothing else
  ps         ps -eo pid,ppid,uid,stat,lstart,rss,args > /dev/null (whole run,
             start-up included)
  first      procmond --once: every SPEC column, JSON lines to /dev/null (the
             in-process snapshot CPU time procmond logs at debug level), with
             hashes (cold cache) and with --no-hash: the /proc walk
  ebpf first procmond --collector ebpf's first snapshot, the same columns, which
             walks the kernel's task list through the loader's BPF iterator
             (root only; with hashes and --no-hash; the CPU of the whole run,
             BPF load included, is printed beside it)
  later      procmond --collector poll: the snapshots after the first
             (known instances are refreshed, not re-read)
and procmond's resident memory while it tracks them: VmRSS, its private part
(RssAnon: heap, stacks, relocated library data) and its file-backed part
(RssFile: mapped library and program pages), and the peak (VmHWM); and the
kernel memory charged to it (kmem: procmond alone in a new memory cgroup, v1).
Goals (issue 3): first <= 1.5x floor, later <= 0.5x floor, RSS < 8 MB at 10k.
With the ebpf collector (the default where it loads) the first snapshot is
the iterator's; with netlink, poll and --once it is the /proc walk.
At 10k and more, also procmond's memory with the ebpf collector, 6 s after
start: standalone (--collector ebpf) and managed (spawned by the agent of
the same build, publishing to it); root only.

BENCH_BASE_BUILD=<another build dir> (say, an older commit built in a git
worktree) measures that build's procmond too, in the same rounds, one run
each after this build's: on a loaded machine only an interleaved
before/after is worth comparing.

Then the churn figure: procmond's CPU (percent of one CPU) while 1,000
processes a second start and exit (bench/burst, BENCH_CHURN_S seconds,
default 10; the issue asks for 30), with the netlink and the ebpf source.
Bounded: about a minute and a half at the defaults.
"""
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchlib

TOP = Path(__file__).resolve().parents[1]
BUILD = Path(os.environ.get("DE_BUILD_DIR", TOP / "build"))
PROCMOND = BUILD / "src/procmond/procmond"
FLOOR = BUILD / "bench/snapshot-floor"
ROUNDS = 5
SNAP_RE = re.compile(r"snapshot: (\d+) processes in (\d+) us, (\d+) us CPU")


def floor_us():
    out = subprocess.run([str(FLOOR), "3"], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[1])


def ps_us():
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(["ps", "-eo", "pid,ppid,uid,stat,lstart,rss,args"],
                   stdout=subprocess.DEVNULL, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) * 1e6


def once_us(*extra, procmond=None):
    p = subprocess.run([str(procmond or PROCMOND), "--once", "--output", "/dev/null", "--log-level",
                        "debug", *extra], capture_output=True, text=True, timeout=120)
    m = SNAP_RE.search(p.stderr)
    if p.returncode != 0 or m is None:
        raise RuntimeError(p.stderr)
    return int(m.group(3))


def ebpf_first_us(*extra, procmond=None):
    """The first snapshot of `procmond --collector ebpf` (the task iterator's
    walk, lifecycle_snapshot_from): its CPU time as procmond logs it, and the
    CPU of the whole run (start-up, the loader's load and attach, the
    snapshot, exit) from this process's children's rusage. None where ebpf
    or its iterator is not available here."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.Popen([str(procmond or PROCMOND), "--collector", "ebpf", "--interval",
                          "600000", "--output", "/dev/null", "--log-level", "debug", *extra],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines = []
    while True:
        line = p.stderr.readline()
        lines.append(line)
        if not line or "snapshot:" in line:
            break
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=20)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    m = SNAP_RE.search(line)
    it = re.search(r"(\d+) from the task iterator", line)
    if m is None or it is None or int(it.group(1)) == 0:
        return None
    whole = ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) * 1e6
    return int(m.group(3)), whole


def own_memcg():
    """A new memory cgroup under this process's own, and the file that tells
    its kernel memory in bytes (cgroup v1 memory.kmem.usage_in_bytes), or
    (None, None) where there is none (cgroup v2 is not handled)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, ctrl, path = line.split(":", 2)
        if "memory" in ctrl.split(","):
            cg = Path("/sys/fs/cgroup/memory" + path) / f"de-bench-{os.getpid()}"
            try:
                cg.mkdir()
            except OSError:
                return None, None
            return cg, cg / "memory.kmem.usage_in_bytes"
    return None, None


def later_us_and_rss(seconds=4.0, procmond=None):
    # procmond alone in a fresh memory cgroup: the kernel memory charged to it
    # (slab of the /proc files it keeps open, and so on). Earlier runs looked
    # up the same /proc files, so their dentries and inodes are not counted.
    cg, kmem_file = own_memcg()
    enter = (lambda: (cg / "cgroup.procs").write_text(str(os.getpid()))) if cg else None
    p = subprocess.Popen([str(procmond or PROCMOND), "--collector", "poll", "--interval", "300",
                          "--output", "/dev/null", "--log-level", "debug"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         preexec_fn=enter)
    time.sleep(seconds)
    status = Path(f"/proc/{p.pid}/status").read_text()
    kmem = int(kmem_file.read_text()) if kmem_file and kmem_file.exists() else None
    p.send_signal(signal.SIGTERM)
    err = p.communicate(timeout=20)[1]
    if cg is not None:
        try:
            cg.rmdir()
        except OSError:
            pass
    times = [int(m.group(3)) for m in SNAP_RE.finditer(err)]
    rss = {k: int(v.split()[0]) for k, v in
           (line.split(":", 1) for line in status.splitlines()
            if line.startswith(("Vm", "Rss")))}
    if len(times) < 3:
        raise RuntimeError(err)
    rss["kmem_b"] = kmem
    return statistics.median(times[1:]), rss.get("VmRSS", 0), rss.get("VmHWM", 0), rss


def kmem_text(mem, procs):
    k = mem.get("kmem_b")
    return "kmem n/a" if k is None else f"kmem {k / 1e6:.1f} MB ({k / procs:.0f} B/process)"


def live_count():
    return sum(1 for d in os.listdir("/proc") if d.isdigit())


def spawn_to(level, sleepers):
    while live_count() < level:
        need = level - live_count()
        for _ in range(min(need, 500)):
            sleepers.append(subprocess.Popen(["sleep", "600"], stdin=subprocess.DEVNULL,
                                             stdout=subprocess.DEVNULL, close_fds=True))
        time.sleep(0.2)


def measure(level, sleepers, base=None):
    spawn_to(level, sleepers)
    time.sleep(0.5)
    fl, ps, first, first_nh, base_first, base_nh = [], [], [], [], [], []
    it, it_nh, it_whole = [], [], []
    use_ebpf = os.geteuid() == 0
    for _ in range(ROUNDS):
        fl.append(floor_us())
        ps.append(ps_us())
        first_nh.append(once_us("--no-hash"))
        first.append(once_us())
        if use_ebpf:
            a, b = ebpf_first_us(), ebpf_first_us("--no-hash")
            use_ebpf = a is not None and b is not None
            if use_ebpf:
                it.append(a[0])
                it_whole.append(a[1])
                it_nh.append(b[0])
        if base is not None:
            base_nh.append(once_us("--no-hash", procmond=base))
            base_first.append(once_us(procmond=base))
    later, rss, hwm, mem = later_us_and_rss()
    f = statistics.median(fl)
    base_line = None
    if base is not None:
        b_later, b_rss, _, b_mem = later_us_and_rss(procmond=base)
        b_first, b_nh = statistics.median(base_first), statistics.median(base_nh)
        base_line = (f"{'':>6} base  | procmond first {b_first / 1000:7.1f} ms "
                     f"({b_first / f:.2f}x), --no-hash {b_nh / 1000:7.1f} ms "
                     f"({b_nh / f:.2f}x) | later {b_later / 1000:6.1f} ms "
                     f"({b_later / f:.2f}x) | RSS {b_rss / 1024:.1f} MB "
                     f"(anon {b_mem.get('RssAnon', 0) / 1024:.1f}, "
                     f"file {b_mem.get('RssFile', 0) / 1024:.1f}) | "
                     f"{kmem_text(b_mem, live_count())}")
    row = {
        "processes": live_count(),
        "floor_ms": f / 1000,
        "ps_ms": statistics.median(ps) / 1000,
        "first_ms": statistics.median(first) / 1000,
        "first_nohash_ms": statistics.median(first_nh) / 1000,
        "later_ms": later / 1000,
        "rss_kb": rss,
        "hwm_kb": hwm,
        "anon_kb": mem.get("RssAnon", 0),
        "file_kb": mem.get("RssFile", 0),
        "kmem_b": mem.get("kmem_b"),
    }
    print(f"{row['processes']:>6} procs | floor {row['floor_ms']:7.1f} ms | "
          f"ps {row['ps_ms']:7.1f} ms ({row['ps_ms'] / row['floor_ms']:.2f}x) | "
          f"procmond first {row['first_ms']:7.1f} ms ({row['first_ms'] / row['floor_ms']:.2f}x),"
          f" --no-hash {row['first_nohash_ms']:7.1f} ms "
          f"({row['first_nohash_ms'] / row['floor_ms']:.2f}x) | "
          f"later {row['later_ms']:6.1f} ms ({row['later_ms'] / row['floor_ms']:.2f}x) | "
          f"RSS {rss / 1024:.1f} MB (anon {row['anon_kb'] / 1024:.1f}, "
          f"file {row['file_kb'] / 1024:.1f}; peak {hwm / 1024:.1f} MB) | "
          f"{kmem_text(mem, row['processes'])}", flush=True)
    if base_line is not None:
        print(base_line, flush=True)
    if it:
        a, b, w = statistics.median(it), statistics.median(it_nh), statistics.median(it_whole)
        row["first_ebpf_ms"], row["first_ebpf_nohash_ms"] = a / 1000, b / 1000
        print(f"{'':>6} ebpf  | procmond first {a / 1000:7.1f} ms ({a / f:.2f}x), --no-hash "
              f"{b / 1000:7.1f} ms ({b / f:.2f}x): the task iterator's walk | the whole run "
              f"(start-up, BPF load by the loader, first snapshot, exit) {w / 1000:.0f} ms",
              flush=True)
    else:
        print(f"{'':>6} ebpf  | first snapshot from the task iterator: n/a here "
              f"({'not root' if os.geteuid() else 'ebpf or its iterator unavailable'})",
              flush=True)
    return row


def status_kb(pid):
    """VmRSS, RssAnon, RssFile and VmHWM of pid in kB (empty when gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in text.splitlines())
            if k in ("VmRSS", "RssAnon", "RssFile", "VmHWM")}


def ebpf_rss(build, managed, settle=6.0):
    """procmond's memory with the ebpf collector, settle seconds after start:
    standalone (procmond --collector ebpf) or managed (the agent of the same
    build spawns it and it publishes; benchlib.start_agent). Returns the
    status_kb dict, or a reason string."""
    procmond = build / "src/procmond/procmond"
    if not managed:
        p = subprocess.Popen([str(procmond), "--collector", "ebpf", "--interval", "2000",
                              "--output", "/dev/null"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        time.sleep(settle)
        mem = status_kb(p.pid) if p.poll() is None else "ebpf unavailable"
        p.send_signal(signal.SIGTERM)
        p.wait(20)
        return mem
    if not (build / "src/agent/daemoneye-agent").exists():
        return "agent not built"
    benchlib.BUILD = build
    tmp = Path(tempfile.mkdtemp(prefix="bench-snap-rss-", dir="/tmp"))
    agent, _ = benchlib.start_agent(tmp, TOP / "rules", settle)
    try:
        pids = [pid for pid, comm, f in benchlib.proc_stats()
                if comm == "procmond" and int(f[3]) == agent.pid]
        return status_kb(pids[0]) if pids else "procmond did not start"
    finally:
        os.killpg(agent.pid, signal.SIGTERM)
        agent.wait(20)
        shutil.rmtree(tmp, ignore_errors=True)


def ebpf_rss_rows(base=None):
    """One line per mode (ebpf standalone, ebpf managed) and build."""
    builds = [("", BUILD)] + ([("base ", base.parents[2])] if base is not None else [])
    for mode in ("standalone", "managed"):
        for tag, build in builds:
            mem = ebpf_rss(build, mode == "managed")
            if isinstance(mem, str):
                print(f"{'':>6} {tag}ebpf {mode}: {mem}", flush=True)
                continue
            print(f"{live_count():>6} procs | {tag}ebpf {mode:10s} | RSS "
                  f"{mem.get('VmRSS', 0) / 1024:.1f} MB (anon {mem.get('RssAnon', 0) / 1024:.1f}, "
                  f"file {mem.get('RssFile', 0) / 1024:.1f}; peak "
                  f"{mem.get('VmHWM', 0) / 1024:.1f} MB)", flush=True)


def proc_cpu_s(pid):
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def churn(collector, seconds):
    burst = BUILD / "bench/burst"
    child = BUILD / "bench/burst-child"
    p = subprocess.Popen([str(PROCMOND), "--collector", collector, "--output", "/dev/null",
                          "--log-level", "info"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    while True:
        line = p.stderr.readline()
        if not line or "seccomp on" in line:
            break
    if p.poll() is not None:
        print(f"  churn {collector}: unavailable ({line.strip()})")
        return
    c0, t0, spawned = proc_cpu_s(p.pid), time.monotonic(), 0
    for sec in range(seconds):
        out = subprocess.run([str(burst), "1000", f"churn-{sec}", str(child), "4"],
                             capture_output=True, text=True)
        spawned += len(out.stdout.split())
        left = t0 + sec + 1 - time.monotonic()
        if left > 0:
            time.sleep(left)
    cpu = proc_cpu_s(p.pid) - c0
    wall = time.monotonic() - t0
    p.send_signal(signal.SIGTERM)
    err = p.communicate(timeout=20)[1]
    m = re.search(r"(\w+): (\d+) events, (\d+) drops", err)
    print(f"  churn {collector}: {spawned / wall:.0f} processes/s for {wall:.0f} s, "
          f"procmond CPU {100 * cpu / wall:.1f} % of one CPU"
          + (f", {m.group(2)} events, {m.group(3)} drops" if m else ""), flush=True)


def main():
    if not PROCMOND.exists() or not FLOOR.exists():
        print(f"build first: {PROCMOND} / {FLOOR} missing", file=sys.stderr)
        return 1
    levels = [int(x) for x in os.environ.get("BENCH_LEVELS", "1000,5000").split(",")]
    print(f"CPU time, median of {ROUNDS} interleaved rounds; goals: first <= 1.5x floor, "
          "later <= 0.5x floor, RSS < 8 MB at 10k")
    base = os.environ.get("BENCH_BASE_BUILD")
    base = Path(base) / "src/procmond/procmond" if base else None
    if base is not None and not base.exists():
        print(f"BENCH_BASE_BUILD: {base} missing", file=sys.stderr)
        return 1
    sleepers = []
    try:
        for level in levels:
            measure(level, sleepers, base)
            # The ebpf collector's memory at 10k (goal: under 8 MB there too).
            if level >= 10000 and os.geteuid() == 0:
                ebpf_rss_rows(base)
    finally:
        for s in sleepers:
            s.kill()
        for s in sleepers:
            s.wait()
    seconds = int(os.environ.get("BENCH_CHURN_S", "10"))
    if seconds > 0 and (BUILD / "bench/burst").exists():
        for collector in ("netlink", "ebpf"):
            churn(collector, seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
