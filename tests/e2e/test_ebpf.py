"""The eBPF source: short-lived processes are seen, with their command line.

Most tests drive bench/ebpf-events, which opens source_ebpf_ops alone and
prints each source_event as a JSON line, so what the kernel programs and
source_ebpf.c capture is checked field by field. The last one checks the same
through `procmond --collector ebpf`. Everything skips, with the reason, where
BPF cannot be loaded (not root, no BTF, built with -Debpf=disabled).
"""
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import BUILD, binary, wait_for

pytestmark = pytest.mark.root

EVENTS = BUILD / "bench" / "ebpf-events"
BURST = BUILD / "bench" / "burst"
CHILD = BUILD / "bench" / "burst-child"


@pytest.fixture(scope="module")
def can_load():
    """Skips the module when the programs cannot be loaded here, saying why."""
    if not EVENTS.exists():
        pytest.skip(f"{EVENTS} not built (meson -Debpf=disabled?)")
    r = subprocess.run([EVENTS, "--duration", "0"], capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    if r.returncode == 77:
        pytest.skip("BPF cannot be loaded here: " + r.stderr.strip())
    assert r.returncode == 0, r.stderr
    assert "ready" in r.stderr


class Source:
    """A running ebpf-events; stop() returns (events, health)."""

    def __init__(self, daemons, tmp_path, *args):
        self.out = tmp_path / "events.jsonl"
        self.err = tmp_path / "events.err"
        with open(self.out, "wb") as fo, open(self.err, "wb") as fe:
            self.proc = daemons.start([EVENTS, *args], stdout=fo, stderr=fe)
        self.daemons = daemons
        assert wait_for(lambda: "ready" in self.err.read_text(), timeout=30), \
            self.err.read_text()

    def stop(self, settle=0.5):
        time.sleep(settle)
        assert self.daemons.stop(self.proc, sig=signal.SIGINT) == 0, self.err.read_text()
        events = [json.loads(line) for line in self.out.read_text().splitlines()]
        health = json.loads(self.err.read_text().splitlines()[-1])
        return events, health


def run_child(marker, code=0, cwd=None, extra=()):
    """Runs burst-child once; returns (pid, boottime ns before, boottime ns after)."""
    before = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    p = subprocess.Popen([CHILD, marker, str(code), *extra], cwd=cwd)
    p.wait()
    after = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    assert p.returncode == code
    return p.pid, before, after


def by_kind(events, kind, pid):
    return [e for e in events if e["kind"] == kind and e["pid"] == pid]


def test_burst_of_1000_fully_captured_with_argv(can_load, daemons, tmp_path):
    src = Source(daemons, tmp_path)
    prefix = f"e2eburst{os.getpid()}"
    r = subprocess.run([BURST, "1000", prefix, CHILD, "4"], capture_output=True, text=True,
                       check=True)
    pids = [int(x) for x in r.stdout.split()]
    events, health = src.stop()
    assert len(pids) == 1000

    execs = {e["pid"]: e for e in events if e["kind"] == "exec" and e["pid"] in pids}
    exits = {e["pid"]: e for e in events if e["kind"] == "exit" and e["pid"] in pids}
    forks = {e["pid"]: e for e in events if e["kind"] == "fork" and e["pid"] in pids}
    assert len(execs) == 1000, f"missed {1000 - len(execs)} execs; health {health}"
    assert len(exits) == 1000 and len(forks) == 1000
    markers = {e["argv"][1] for e in execs.values()}
    assert markers == {f"{prefix}-{i}" for i in range(1000)}
    for pid, e in execs.items():
        assert e["argv"] == [str(CHILD), e["argv"][1], "0"]
        assert e["filename"] == str(CHILD)
        assert e["ppid"] == forks[pid]["ppid"]
        assert exits[pid]["exit_code"] == 0
        assert exits[pid]["start_ns"] == e["start_ns"] == forks[pid]["start_ns"]
    assert len({e["ppid"] for e in execs.values()}) == 1  # all children of burst
    assert health["drops"] == 0 and health["errors"] == 0
    assert health["events"] >= 3000


def test_process_living_under_a_millisecond_keeps_its_details(can_load, daemons, tmp_path):
    src = Source(daemons, tmp_path)
    marker = f"e2equick{os.getpid()}"
    pid, before, after = run_child(marker, code=7, cwd=tmp_path)
    events, _ = src.stop()

    (ex,) = by_kind(events, "exec", pid)
    (end,) = by_kind(events, "exit", pid)
    assert ex["argv"] == [str(CHILD), marker, "7"] and ex["argv_truncated"] is False
    assert ex["filename"] == str(CHILD)
    assert ex["comm"] == "burst-child"
    assert ex["cwd"] == str(tmp_path)
    assert ex["ppid"] == os.getpid() and ex["tid"] == pid
    assert (ex["uid"], ex["euid"], ex["gid"]) == (os.getuid(), os.geteuid(), os.getgid())
    assert before <= ex["start_ns"] <= ex["ktime_ns"] <= end["ktime_ns"] <= after
    assert end["exit_code"] == 7 << 8  # as wait(2) encodes it
    assert end["start_ns"] == ex["start_ns"]
    # Exec to exit is typically ~0.3 ms here; the bound only guards against
    # records of some other process (a loaded CI machine can be slow).
    assert 0 < end["ktime_ns"] - ex["ktime_ns"] < 1_000_000_000


def test_relative_exec_gets_an_absolute_filename(can_load, daemons, tmp_path):
    src = Source(daemons, tmp_path)
    p = subprocess.Popen(["./burst-child", "e2erel", "0"], cwd=CHILD.parent,
                         executable="./burst-child")
    assert p.wait() == 0
    events, _ = src.stop()
    (ex,) = by_kind(events, "exec", p.pid)
    assert ex["filename"] == str(CHILD)
    assert ex["argv"] == ["./burst-child", "e2erel", "0"]


def test_long_argv_is_truncated_and_flagged(can_load, daemons, tmp_path):
    src = Source(daemons, tmp_path)
    marker = f"e2elong{os.getpid()}"
    pid, _, _ = run_child(marker, extra=("x" * 6000,))
    events, _ = src.stop()

    (ex,) = by_kind(events, "exec", pid)
    assert ex["argv_truncated"] is True
    assert ex["argv"][:3] == [str(CHILD), marker, "0"]
    assert sum(len(a) + 1 for a in ex["argv"]) in (4096, 4097)  # the last one has no NUL


def test_longest_filename_and_argv_together(can_load, daemons, tmp_path):
    """A 4 KiB path and 4 KiB of argv fill the record's first two parts: the
    cwd behind them must still come out whole."""
    d = tmp_path
    while len(str(d)) + 1 + 250 < 4095:  # the last name must stay under NAME_MAX
        d = d / ("d" * 200)
    d.mkdir(parents=True)
    exe = d / ("x" * (4095 - len(str(d)) - 1))
    os.symlink(CHILD, exe)
    assert len(str(exe)) == 4095
    src = Source(daemons, tmp_path)
    p = subprocess.Popen(["max", "e2emax", "0", "y" * 5000], executable=exe, cwd=tmp_path)
    assert p.wait() == 0
    events, _ = src.stop()
    (ex,) = by_kind(events, "exec", p.pid)
    assert ex["filename"] == str(exe)
    assert ex["argv_truncated"] is True and ex["argv"][:3] == ["max", "e2emax", "0"]
    assert sum(len(a) + 1 for a in ex["argv"]) in (4096, 4097)
    assert ex["cwd"] == str(tmp_path)


def test_cwd_crosses_mounts_and_can_be_turned_off(can_load, daemons, tmp_path):
    if not os.path.ismount("/dev/shm"):
        pytest.skip("/dev/shm is not a mount point here")
    src = Source(daemons, tmp_path)
    pid, _, _ = run_child("e2ecwd", cwd="/dev/shm")
    events, _ = src.stop()
    assert by_kind(events, "exec", pid)[0]["cwd"] == "/dev/shm"

    src = Source(daemons, tmp_path, "--no-cwd")
    pid, _, _ = run_child("e2enocwd", cwd="/dev/shm")
    events, _ = src.stop()
    (ex,) = by_kind(events, "exec", pid)
    assert "cwd" not in ex and ex["argv"][1] == "e2enocwd"


def test_fork_is_a_process_and_a_thread_is_not(can_load, daemons, tmp_path):
    src = Source(daemons, tmp_path)
    child = os.fork()
    if child == 0:
        os._exit(3)
    _, status = os.waitpid(child, 0)
    t = threading.Thread(target=time.sleep, args=(0.01,))
    t.start()
    t.join()
    events, _ = src.stop()

    (fk,) = by_kind(events, "fork", child)
    assert fk["ppid"] == os.getpid() and fk["tid"] == child
    (end,) = by_kind(events, "exit", child)
    assert end["exit_code"] == status == 3 << 8
    # The thread neither forked a process nor ended ours.
    assert not [e for e in events if e["kind"] in ("fork", "exit") and e["pid"] == os.getpid()]
    assert not by_kind(events, "exec", child)


def test_rename_of_the_process_is_reported_not_of_a_thread(can_load, daemons, tmp_path):
    """prctl(PR_SET_NAME) by the leader and a write to /proc/<pid>/comm are
    what masquerading looks like; a thread's own name, or exec's, is not."""
    src = Source(daemons, tmp_path)
    code = ("import ctypes, os, threading\n"
            "libc = ctypes.CDLL(None)\n"
            "libc.prctl(15, b'kworker/0:1', 0, 0, 0)\n"
            "t = threading.Thread(target=libc.prctl, args=(15, b'thread-name', 0, 0, 0))\n"
            "t.start(); t.join()\n"
            "open('/proc/self/comm', 'w').write('via-proc')\n"
            f"os.execv({str(CHILD)!r}, [{str(CHILD)!r}, 'e2ecomm'])\n")
    p = subprocess.Popen(["/usr/bin/python3", "-c", code])
    assert p.wait() == 0
    events, _ = src.stop()
    names = [e["comm"] for e in by_kind(events, "comm", p.pid)]
    assert names == ["kworker/0:1", "via-proc"]
    assert by_kind(events, "exec", p.pid)[-1]["comm"] == "burst-child"


def test_exec_from_a_thread_reports_the_process(can_load, daemons, tmp_path):
    """A non-leader thread that execs becomes the leader: one process, its tgid."""
    src = Source(daemons, tmp_path)
    marker = f"e2ethr{os.getpid()}"
    code = ("import os, threading\n"
            f"t = threading.Thread(target=os.execv, args=({str(CHILD)!r}, "
            f"[{str(CHILD)!r}, {marker!r}, '5']))\n"
            "t.start(); t.join()\n")
    p = subprocess.Popen(["/usr/bin/python3", "-c", code])
    assert p.wait() == 5
    events, _ = src.stop()
    (ex,) = [e for e in events if e["kind"] == "exec" and marker in e.get("argv", [])]
    assert ex["pid"] == ex["tid"] == p.pid
    (end,) = by_kind(events, "exit", ex["pid"])
    assert end["exit_code"] == 5 << 8


def test_exec_reports_the_running_image_and_its_key(can_load, daemons, tmp_path):
    """The image is mm->exe_file, as /proc/PID/exe shows it: a script's
    interpreter, a memfd's /memfd: name (deleted); its key is stat(2)'s."""
    script = tmp_path / "tool.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    src = Source(daemons, tmp_path)
    p = subprocess.run([script], cwd=tmp_path)
    assert p.returncode == 0
    fd = os.memfd_create("e2eimage", 0)
    os.write(fd, CHILD.read_bytes())
    m = subprocess.Popen([f"/proc/self/fd/{fd}", f"e2emfd{os.getpid()}", "0"], pass_fds=(fd,))
    m.wait()
    os.close(fd)
    events, _ = src.stop()

    (ex,) = [e for e in events if e["kind"] == "exec" and e.get("filename") == str(script)]
    sh = os.path.realpath("/bin/sh")
    assert ex["exe"] == sh and ex["exe_deleted"] is False
    st = os.stat(sh)
    assert ex["image"] == {"dev": st.st_dev, "ino": st.st_ino, "size": st.st_size,
                           "mtime_sec": int(st.st_mtime), "mtime_nsec": st.st_mtime_ns % 10**9,
                           "ctime_sec": int(st.st_ctime), "ctime_nsec": st.st_ctime_ns % 10**9}
    assert ex["cgroup_id"] > 0 and ex["threads"] == 1
    (mx,) = by_kind(events, "exec", m.pid)
    assert mx["exe"] == "/memfd:e2eimage" and mx["exe_deleted"] is True


def start_procmond(daemons, datadir, tmp_path, *args):
    """procmond --collector ebpf, its JSON lines in tmp_path/procmond.jsonl and
    its log in procmond.err; returns (proc, out, err) once the first snapshot
    is out."""
    out = tmp_path / "procmond.jsonl"
    err = tmp_path / "procmond.err"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        p = daemons.start([binary("procmond"), "--collector", "ebpf", *args,
                           "--wal-dir", datadir], stdout=fo, stderr=fe)
    assert wait_for(lambda: p.poll() is not None or out.stat().st_size > 0, timeout=30)
    assert p.poll() is None, err.read_text()
    return p, out, err


def test_procmond_hashes_a_process_that_is_already_gone(can_load, datadir, daemons, tmp_path):
    """A process that exits before procmond looks still gets its image's hash
    (opened by path, checked against the kernel's key) and its image path."""
    child = tmp_path / "child"
    child.write_bytes(CHILD.read_bytes())
    child.chmod(0o755)
    p, out, err = start_procmond(daemons, datadir, tmp_path)
    marker = f"e2ehash{os.getpid()}"
    pids = []
    for i in range(3):
        c = subprocess.Popen([child, f"{marker}-{i}", "0"])
        c.wait()
        pids.append(c.pid)
    wait_for(lambda: out.read_text().count(marker) >= 6, timeout=20)
    daemons.stop(p)
    want = hashlib.sha256(child.read_bytes()).hexdigest()
    starts = [json.loads(line) for line in out.read_text().splitlines() if marker in line]
    starts = [e for e in starts if e["event"] == "start"]
    assert {e["process"]["pid"] for e in starts} == set(pids), starts
    for e in starts:
        assert e["source"] == "ebpf"
        assert e["process"]["executable_path"] == str(child)
        assert e["process"]["executable_hash"] == want, e
        assert e["process"]["missing"] & 32 == 0


def test_procmond_collector_ebpf_sees_a_burst(can_load, datadir, daemons, tmp_path):
    p, out, err = start_procmond(daemons, datadir, tmp_path, "--no-hash")
    prefix = f"e2epm{os.getpid()}"
    subprocess.run([BURST, "1000", prefix, CHILD, "4"], capture_output=True, check=True)
    quick = f"e2epmquick{os.getpid()}"
    pid, _, _ = run_child(quick, code=9, cwd=tmp_path)

    def seen():
        return set(re.findall(re.escape(prefix) + r"-(\d+)\b", out.read_text(errors="replace")))

    wait_for(lambda: len(seen()) == 1000 and quick in out.read_text(), timeout=20)
    daemons.stop(p)
    assert len(seen()) == 1000, f"missed {1000 - len(seen())}; stderr: {err.read_text()[-500:]}"
    lines = [json.loads(line) for line in out.read_text().splitlines() if "e2epm" in line]
    starts = [e for e in lines
              if e["event"] == "start" and f"{prefix}-" in e["process"]["command_line"]]
    assert len({e["process"]["pid"] for e in starts}) == 1000
    assert all(e["source"] == "ebpf" for e in starts)
    # The sub-millisecond process: its start and its stop, command line and exit status.
    mine = [e for e in lines if e["process"]["pid"] == pid]
    assert {e["event"] for e in mine} >= {"start", "stop"}, mine
    for e in mine:
        assert e["process"]["command_line"] == f"{CHILD} {quick} 9"
        assert e["process"]["cwd"] == str(tmp_path)
    (stop,) = [e for e in mine if e["event"] == "stop"]
    assert stop["exit_code"] in (9, 9 << 8)


def cgroup_column(text):
    """The cgroup column procmond derives from a /proc/PID/cgroup text: the
    unified path unless it is "/" (a hybrid host), else the first line's;
    with the line it came from (hierarchy id, controllers)."""
    lines = [ln.split(":", 2) for ln in text.splitlines() if ln.count(":") >= 2]
    for hid, ctl, path in lines:
        if hid == "0" and ctl == "" and path != "/":
            return path, (hid, ctl)
    hid, ctl, path = lines[0]
    return path, (hid, ctl)


def cgroup_mount(hierarchy):
    """Where the hierarchy (hierarchy id, controllers) of our own cgroup file
    is mounted at its root, or None."""
    hid, ctl = hierarchy
    want = set(ctl.split(",")) if ctl else set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, post = line.split(" - ", 1)
            fields, (fstype, _src, opts) = pre.split(), post.split()[:3]
            if fields[3] != "/":
                continue
            if (hid == "0" and fstype == "cgroup2") or \
                    (hid != "0" and fstype == "cgroup" and want <= set(opts.split(","))):
                return fields[4]
    return None


def test_procmond_cgroup_of_a_process_moved_before_exec(can_load, datadir, daemons, tmp_path):
    """Processes moved into a cgroup between fork and exec start with that
    cgroup (their exec record names its cgroup set), and processes of two
    cgroup sets never get each other's path. Two fresh cgroups, so that no
    other process on the host shares their sets. The first rounds stay alive
    until procmond has reported them (it read their file while they lived)
    and are then stopped; the later ones exit at once, before procmond could
    read their file: their cgroup can only come from the memo by cgroup-set
    key, and must still be each one's own."""
    text = open("/proc/self/cgroup").read()
    old, hierarchy = cgroup_column(text)
    mnt = cgroup_mount(hierarchy)
    if mnt is None:
        pytest.skip(f"the hierarchy of our cgroup column ({hierarchy}) is not mounted here")
    names = {k: f"de-test-{os.getpid()}-{k}" for k in ("a", "b")}
    dirs = {k: os.path.join(mnt + old.rstrip("/"), n) for k, n in names.items()}
    paths = {k: old.rstrip("/") + "/" + n for k, n in names.items()}
    made = []
    marker = f"e2ecgmove{os.getpid()}"
    rounds = [("exec sleep 60", i) for i in range(2)] + [(":", i) for i in range(2, 6)]
    try:
        for k in ("a", "b"):
            try:
                os.mkdir(dirs[k])
            except OSError as e:
                pytest.skip(f"cannot create a cgroup in {mnt}: {e}")
            made.append(dirs[k])
        p, out, err = start_procmond(daemons, datadir, tmp_path, "--no-hash")

        def starts():
            evs = [json.loads(line) for line in out.read_text().splitlines() if marker in line]
            return {e["process"]["command_line"].split()[-1]: e["process"] for e in evs
                    if e["event"] == "start" and e["process"]["command_line"].startswith(
                        ("/bin/sh -c exec sleep 60 ", "/bin/sh -c : "))}

        def spawn(k, body, i):
            def move_me():
                # Between fork and exec: the child's only exec is in cgroup k.
                with open(os.path.join(dirs[k], "cgroup.procs"), "w") as f:
                    f.write(str(os.getpid()))
            return subprocess.Popen(["/bin/sh", "-c", body, f"{marker}-{k}-{i}"],
                                    preexec_fn=move_me, start_new_session=True)

        for body, i in rounds:
            kids = [spawn(k, body, i) for k in ("a", "b")]
            if body.startswith("exec"):
                # Alive until procmond has reported them, however slow the
                # machine; then gone, so their texts can stand for their keys.
                assert wait_for(lambda: {f"{marker}-a-{i}", f"{marker}-b-{i}"}
                                <= starts().keys(), timeout=20)
                for c in kids:
                    os.killpg(c.pid, signal.SIGKILL)
                assert [c.wait() for c in kids] == [-signal.SIGKILL] * 2
            else:
                assert [c.wait() for c in kids] == [0, 0]

        wait_for(lambda: len(starts()) >= 2 * len(rounds), timeout=20)
        daemons.stop(p)
        got = starts()
        for _, i in rounds:
            for k in ("a", "b"):
                assert got[f"{marker}-{k}-{i}"]["cgroup"] == paths[k], (i, k, got)
    finally:
        for d in made:
            for _ in range(50):
                try:
                    os.rmdir(d)
                    break
                except OSError:
                    time.sleep(0.1)


LOADER = BUILD / "src" / "procmond" / "procmond-bpf-loader"


def children_of(pid):
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = open(f"/proc/{d}/stat").read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(d))
    return kids


def test_procmond_maps_no_libbpf_once_the_loader_is_done(can_load, datadir, daemons, tmp_path):
    """procmond-bpf-loader loads and attaches, hands the fds over and exits:
    procmond maps the ring buffer but none of libbpf, libelf or zlib, and
    still sees a new process with its argv."""
    p, out, err = start_procmond(daemons, datadir, tmp_path, "--no-hash")
    assert "collector: ebpf" in err.read_text()
    maps = open(f"/proc/{p.pid}/maps").read()
    libs = {os.path.basename(line.split()[-1]) for line in maps.splitlines()
            if ".so" in line}
    assert not [lib for lib in libs if lib.startswith(("libbpf", "libelf", "libz."))], libs
    assert "anon_inode:bpf-map" in maps  # the ring buffer and .bss, mapped
    assert children_of(p.pid) == [], "the loader exited and was reaped"
    marker = f"e2eloader{os.getpid()}"
    run_child(marker)
    assert wait_for(lambda: marker in out.read_text(errors="replace"), timeout=10), \
        err.read_text()[-500:]


def test_bpf_loader_run_by_hand_says_how_it_is_meant_to_run():
    # No socket on fd 3 (Popen closes every fd above 2).
    r = subprocess.run([LOADER], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "usage: procmond-bpf-loader" in r.stderr and "fd 3" in r.stderr


def test_procmond_without_its_loader_says_so(can_load, tmp_path):
    """A procmond whose loader is missing (copied alone elsewhere) fails with
    --collector ebpf, naming the loader, and auto passes ebpf over for the
    same reason instead of skipping it silently."""
    alone = tmp_path / "procmond"
    shutil.copy2(binary("procmond"), alone)
    p = subprocess.Popen([alone, "--collector", "ebpf", "--interval", "200"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        err = p.communicate(timeout=30)[1]
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        pytest.skip("a procmond-bpf-loader is installed on this host (make install)")
    assert p.returncode != 0
    assert "collector ebpf cannot run here: procmond-bpf-loader is not installed" in err, err
    p = subprocess.Popen([alone, "--collector", "auto", "--interval", "200"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in p.stderr:
            lines.append(line)
            if "seccomp on" in line:
                break
    finally:
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=20)
    log = "".join(lines)
    assert "collector ebpf passed over: procmond-bpf-loader is not installed" in log, log
    assert "collector: netlink" in log, log


SETUID = """
import os, sys, time
time.sleep(0.5)
os.setresgid(65533, 65533, 65533)
os.setresuid(65534, 65534, 65534)
time.sleep(3)
"""


def test_procmond_sees_a_uid_change_as_it_happens(can_load, datadir, daemons, tmp_path):
    """No tracepoint fires for set*id(): with the ebpf source procmond also
    listens to the proc connector, filtered to uid and gid events, so a
    process that drops to another user is reported within moments, not at
    the next snapshot (a minute away here)."""
    major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    if (major, minor) < (6, 6):
        pytest.skip("the proc connector's event filter needs Linux 6.6")
    p, out, err = start_procmond(daemons, datadir, tmp_path, "--no-hash", "--interval", "60000")
    assert "uid and gid changes: from the proc connector" in err.read_text(), err.read_text()
    child = subprocess.Popen(["/usr/bin/python3", "-c", SETUID])

    def changed():
        for line in out.read_text(errors="replace").splitlines():
            e = json.loads(line)
            if e["event"] == "modified" and e["process"]["pid"] == child.pid:
                return e
        return None

    try:
        e = wait_for(changed, timeout=10)
    finally:
        child.kill()
        child.wait()
    assert e is not None, err.read_text()[-500:]
    assert e["source"] == "netlink"
    assert e["process"]["user_id"] == 65534 and e["process"]["effective_user_id"] == 65534
    assert e["process"]["group_id"] == 65533
    assert "user_id" in e["modified_fields"]


FAKE_LOADERS = {
    # name: (script body after the shebang line, what the error must say)
    "silent": ("import sys; sys.exit(3)", "exited (status 3) without an answer"),
    "killed": ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
               "was killed by signal 9"),
    "garbage": ("import os; os.write(3, b'not an answer')", "no valid answer from"),
    # The right size and magic, but no fds for the links it announces.
    "short": ("import os, struct; os.write(3, struct.pack('<IiIIIIII512s', 0x44454c32, 0, "
              "262144, 4104, 0, 8, 6, 0, b''))", "the BPF loader's answer does not add up"),
    "refused": ("import os, struct; os.write(3, struct.pack('<IiIIIIII512s', 0x44454c32, -22, "
                "0, 0, 0, 0, 0, 0, b'the kernel rejected the BPF programs: test'))",
                "the kernel rejected the BPF programs: test"),
}


@pytest.mark.parametrize("kind", sorted(FAKE_LOADERS))
def test_a_loader_that_misbehaves_is_a_clear_error(kind, tmp_path):
    """Whatever the loader does short of a valid answer, the source fails to
    open with a reason that says what happened, and holds nothing of it."""
    if not EVENTS.exists():
        pytest.skip(f"{EVENTS} not built (meson -Debpf=disabled?)")
    body, want = FAKE_LOADERS[kind]
    fake = tmp_path / "fake-loader"
    fake.write_text("#!/usr/bin/python3\n" + body + "\n")
    fake.chmod(0o755)
    r = subprocess.run([EVENTS, "--duration", "0"], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, EBPF_EVENTS_LOADER=str(fake)))
    assert r.returncode == 1, r.stderr
    assert want in r.stderr, r.stderr


VOLATILE = {"cpu_usage", "memory_usage", "collection_time", "state", "start_time", "name"}


def snapshot_records(path):
    """pid -> process of the `snapshot` events in a JSON lines file."""
    recs = {}
    for line in path.read_text(errors="replace").splitlines():
        e = json.loads(line)
        if e["event"] == "snapshot":
            recs.setdefault(e["process"]["pid"], e["process"])
    return recs


def test_first_snapshot_from_the_task_iterator_matches_proc(can_load, datadir, daemons,
                                                            tmp_path):
    """The ebpf collector's first snapshot walks the kernel's task list (the
    loader's iterator) instead of /proc: every process it reports has the
    columns a /proc walk (--once) gives it, among them an image whose name
    has spaces and parentheses, a deleted image, a memfd image, a cwd with
    spaces, a cwd too deep for the kernel's walk; and the log says how many
    came from the iterator."""
    sleep = os.path.realpath(shutil.which("sleep"))
    odd = tmp_path / "dir (x) y"
    odd.mkdir()
    tool = odd / "my tool (1)"
    shutil.copy(sleep, tool)
    gone = tmp_path / "gone"
    shutil.copy(sleep, gone)
    # Deeper than the kernel walk goes (DE_BPF_CWD_DEPTH): /proc says.
    deep = tmp_path.joinpath(*(["d"] * 60))
    deep.mkdir(parents=True)
    procs = [subprocess.Popen([tool, "601"], cwd=odd),
             subprocess.Popen([gone, "602"], cwd=deep)]
    fd = os.memfd_create("e2eiterimg", 0)
    os.write(fd, open(sleep, "rb").read())
    procs.append(subprocess.Popen([f"/proc/self/fd/{fd}", "603"], pass_fds=(fd,)))
    os.close(fd)
    try:
        assert wait_for(lambda: all(os.readlink(f"/proc/{p.pid}/exe") != sys.executable
                                    for p in procs), timeout=10)
        gone.unlink()
        p, out, err = start_procmond(daemons, datadir, tmp_path, "--log-level", "debug",
                                     "--interval", "60000")
        assert wait_for(lambda: "snapshot:" in err.read_text(), timeout=30)
        daemons.stop(p)
        log = err.read_text()
        m = re.search(r"snapshot: (\d+) processes .* (\d+) from the task iterator, "
                      r"(\d+) of them with a shared cgroup read", log)
        assert m, log
        assert int(m.group(2)) >= len(procs), log
        # The three share this test's cgroups: one file read stands for all
        # (unless this kernel cannot trace cgroup migrations).
        if "cgroup migrations cannot be traced" not in log:
            assert int(m.group(3)) >= len(procs), log
        once = tmp_path / "once.jsonl"
        r = subprocess.run([binary("procmond"), "--once", "--output", str(once)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        it, pr = snapshot_records(out), snapshot_records(once)
        for q in procs:
            assert q.pid in it and q.pid in pr, q.pid
        common = set(it) & set(pr)
        assert len(common) >= int(m.group(2)) // 2
        diffs = [(pid, k, v, pr[pid].get(k)) for pid in sorted(common)
                 for k, v in it[pid].items() if k not in VOLATILE and pr[pid].get(k) != v]
        assert diffs == []
        want = hashlib.sha256(open(sleep, "rb").read()).hexdigest()
        t, g, mf = (it[q.pid] for q in procs)
        assert t["executable_path"] == str(tool) and t["cwd"] == str(odd)
        assert t["command_line"] == f"{tool} 601"
        assert g["exe_deleted"] is True and g["file_exists"] is False
        assert g["executable_path"] == str(gone) and g["cwd"] == str(deep)
        assert mf["exe_memfd"] is True and mf["executable_path"].startswith("/memfd:e2eiterimg")
        assert t["executable_hash"] == g["executable_hash"] == mf["executable_hash"] == want
        assert t["ppid"] == os.getpid() and t["user_id"] == os.getuid()
    finally:
        for q in procs:
            q.kill()
            q.wait()
