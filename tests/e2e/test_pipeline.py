"""The durable pipeline procmond -> agent -> SQLite (docs/pipeline.md).

Exactly once across kill -9 of the agent's engine, of the whole agent and of
procmond during a burst of marked short-lived processes; bad peers close only
their own connection; credentials are checked; a second collector registers
and is stored. The store is read directly with sqlite3.
"""
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from conftest import BUILD, wait_for

pytestmark = pytest.mark.root

BURST = int(os.environ.get("DE_PIPELINE_BURST", "3000"))

# ---- the frame protocol, by hand (src/lib/ipc.h) ---------------------------

_CRC_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC_TABLE.append(_c)


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


T_REGISTER, T_REGISTER_ACK, T_HEARTBEAT, T_EVENTS, T_ACK = 1, 2, 3, 4, 5
T_CONTROL_REQUEST, T_CONTROL_RESPONSE = 9, 10


def frame(ftype, payload, flags=0):
    tf = struct.pack("<HH", ftype, flags)
    return struct.pack("<I", len(payload)) + tf + struct.pack("<I", crc32c(tf + payload)) + payload


def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def f_varint(num, v):
    return varint(num << 3) + varint(v & 0xFFFFFFFFFFFFFFFF)


def f_bytes(num, b):
    if isinstance(b, str):
        b = b.encode()
    return varint((num << 3) | 2) + varint(len(b)) + b


def f_double(num, v):
    return varint((num << 3) | 1) + struct.pack("<d", v)


def parse_pb(buf):
    """{field: [values]} of one protobuf message (varints and bytes only)."""
    out, i = {}, 0
    while i < len(buf):
        key, i = _read_varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _read_varint(buf, i)
        elif wt == 2:
            n, i = _read_varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wt)
        out.setdefault(num, []).append(v)
    return out


def _read_varint(buf, i):
    shift = v = 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        if not b & 0x80:
            return v, i
        shift += 7


def recv_frame(sock, timeout=10.0):
    sock.settimeout(timeout)
    hdr = _recv_exact(sock, 12)
    if hdr is None:
        return None
    n, ftype, _flags, _crc = struct.unpack("<IHHI", hdr)
    return ftype, _recv_exact(sock, n) if n else b""


def _recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def control(sock_path, command="health"):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(sock_path))
        s.sendall(frame(T_CONTROL_REQUEST, f_bytes(1, command)))
        ftype, payload = recv_frame(s)
        assert ftype == T_CONTROL_RESPONSE
        m = parse_pb(payload)
        return m[1][0], m.get(2, [b""])[0].decode()


# ---- the agent under test -----------------------------------------------


class Agent:
    def __init__(self, daemons, datadir, rules, extra=""):
        self.daemons, self.datadir, self.rules = daemons, datadir, rules
        self.sock = datadir / "daemoneye.sock"
        self.db = datadir / "events.db"
        self.log = datadir.parent / "agent.log"
        self.cfg = datadir.parent / "agent.yaml"
        self.cfg.write_text(
            "agent:\n  data_dir: %s\n  startup_timeout_s: 30\n"
            "alerting:\n  sinks:\n    - { type: file, path: %s, format: json }\n%s"
            % (datadir, datadir.parent / "alerts.jsonl", extra))
        self.proc = None

    def start(self):
        env = dict(os.environ, DAEMONEYE_PROCMOND_BINARY=str(BUILD / "src/procmond/procmond"))
        logf = open(self.log, "ab")
        self.proc = self.daemons.start(
            [BUILD / "src/agent/daemoneye-agent", "--config", self.cfg, "--rules-dir",
             self.rules, "--log-level", "info"], env=env, stdout=subprocess.DEVNULL,
            stderr=logf)
        assert wait_for(lambda: self.collector_pid() and self.registered(), 20), self.tail()

    def registered(self):
        try:
            status, body = control(self.sock)
        except OSError:
            return False
        return status == 0 and '"SteadyState"' in body

    def children(self):
        out = {}
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1:stat.rindex(")")]
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            if self.proc and ppid == self.proc.pid:
                out.setdefault(comm, []).append(int(d.name))
        return out

    def engine_pid(self):
        kids = self.children()
        return (kids.get("daemoneye-agent") or kids.get("daemoneye-agen") or [None])[0]

    def collector_pid(self):
        return (self.children().get("procmond") or [None])[0]

    def tail(self, n=30):
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def count_log(self, needle):
        return self.log.read_text(errors="replace").count(needle)


@pytest.fixture
def agent(daemons, datadir, tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    rules.chmod(0o755)
    a = Agent(daemons, datadir, rules)
    a.start()
    return a


def burst(count, marker, parallel=4):
    return subprocess.Popen([BUILD / "bench/burst", str(count), marker,
                             BUILD / "bench/burst-child", str(parallel)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def marked(db, marker):
    """(rows, distinct (pid, start_time)) of the marked execs in the store."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as c:
        c.execute("PRAGMA busy_timeout = 30000")
        return c.execute(
            "SELECT count(*), count(DISTINCT pid || ':' || start_time) FROM process_events "
            "WHERE event_type = 'start' AND command_line LIKE ?", (f"%{marker}-%",)).fetchone()


def duplicates(db, marker):
    """The rows behind any (pid, start_time) stored twice, for the failure message."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as c:
        return c.execute(
            "SELECT seq, pid, start_time, source, command_line FROM process_events p "
            "WHERE event_type = 'start' AND command_line LIKE ?1 AND (SELECT count(*) FROM "
            "process_events q WHERE q.pid = p.pid AND q.start_time = p.start_time AND "
            "q.event_type = 'start' AND q.command_line LIKE ?1) > 1", (f"%{marker}-%",)).fetchall()


def check_exactly_once(db, marker):
    """The pipeline's guarantee, checked on the store: no WAL sequence is
    stored twice, and a (pid, start_time) stored twice is never the same
    event delivered twice. Returns the rows procmond itself reported twice
    (an exec seen by both the /proc snapshot and the eBPF source, each under
    its own sequence): those are the collector's, not the pipeline's, and
    are reported in docs/pipeline.md and to procmond's owner."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as c:
        twice = c.execute("SELECT collector_id, seq, count(*) FROM process_events "
                          "GROUP BY collector_id, seq HAVING count(*) > 1").fetchall()
    assert twice == [], twice
    dups = duplicates(db, marker)
    groups = {}
    for seq, pid, start, source, _cmd in dups:
        groups.setdefault((pid, start), []).append((seq, source))
    for key, evs in groups.items():
        assert len({s for s, _ in evs}) == len(evs), (key, evs)
        assert len({src for _, src in evs}) == len(evs), ("same source twice", key, evs)
    return groups


def wait_marked(db, marker, n, timeout=90):
    return wait_for(lambda: marked(db, marker)[1] >= n, timeout, 0.5)


# ---- the WAL, read the way procmond writes it (src/procmond/wal.h) -------


def wal_marked_seqs(waldir, marker):
    """Sequences of the marked start events in a copy of procmond's WAL."""
    seqs = []
    for f in sorted(Path(waldir).glob("procmond-*.wal")):
        buf, off, prev = f.read_bytes(), 0, 0
        while off + 16 <= len(buf):
            n, crc, seq = struct.unpack_from("<IIQ", buf, off)
            body = buf[off + 16:off + 16 + n]
            if len(body) < n or seq <= prev:
                break
            if crc32c(struct.pack("<QI", seq, n) + body) != crc:
                break
            ev = parse_pb(body)
            proc = parse_pb(ev[5][0])
            cmd = proc.get(5, [b""])[0].decode(errors="replace")
            if ev[1][0] == 1 and f"{marker}-" in cmd:
                seqs.append(seq)
            prev, off = seq, off + 16 + n
    return seqs


def rows_for_seqs(db, seqs):
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as c:
        bad = []
        for s in seqs:
            n = c.execute("SELECT count(*) FROM process_events WHERE collector_id = 'procmond' "
                          "AND seq = ?", (s,)).fetchone()[0]
            if n != 1:
                bad.append((s, n))
        return bad


def burst_arrives_whole(agent, marker, n):
    """After restarts nothing is missed: a burst of n execs is stored; with
    the eBPF source all n, with any source everything procmond accepted."""
    assert burst(n, marker).wait(60) == 0
    time.sleep(1.0)
    pid = agent.collector_pid()
    accepted = wal_marked_seqs(snapshot_wal(agent, pid), marker)
    os.kill(pid, signal.SIGCONT)
    ok = wait_for(lambda: not rows_for_seqs(agent.db, accepted), 60, 0.5)
    assert ok, (rows_for_seqs(agent.db, accepted)[:10], agent.tail())
    check_exactly_once(agent.db, marker)
    if agent.count_log("collector: ebpf"):
        assert wait_marked(agent.db, marker, n), marked(agent.db, marker)
        assert marked(agent.db, marker)[1] == n


def snapshot_wal(agent, pid):
    """Freezes procmond, copies what its WAL holds, and returns the copy."""
    os.kill(pid, signal.SIGSTOP)
    dst = agent.datadir.parent / f"walcopy-{pid}-{time.monotonic_ns()}"
    shutil.copytree(agent.datadir / "wal", dst)
    return dst


# ---- exactly once -------------------------------------------------------


def test_kill_engine_during_burst_exactly_once(agent):
    marker = "deeng" + uuid.uuid4().hex[:8]
    b = burst(BURST, marker)
    for _ in range(3):
        time.sleep(random.uniform(0.2, 1.5))
        pid = agent.engine_pid()
        assert pid, agent.tail()
        os.kill(pid, signal.SIGKILL)
        # The supervisor brings a new engine up; procmond's WAL holds the rest.
        assert wait_for(lambda: agent.engine_pid() not in (None, pid), 10), agent.tail()
    assert b.wait(120) == 0
    time.sleep(1.0)  # the last execs reach procmond's WAL
    # procmond was never killed: its WAL (one file, nothing rotated) holds
    # every event it accepted during the test. All of them must be stored.
    pid = agent.collector_pid()
    accepted = wal_marked_seqs(snapshot_wal(agent, pid), marker)
    os.kill(pid, signal.SIGCONT)
    ok = wait_for(lambda: not rows_for_seqs(agent.db, accepted), 90, 0.5)
    assert ok, (rows_for_seqs(agent.db, accepted)[:10], agent.tail())
    rows, distinct = marked(agent.db, marker)
    collector_dups = check_exactly_once(agent.db, marker)
    assert rows == distinct + sum(len(v) - 1 for v in collector_dups.values())
    assert distinct == len(accepted) - sum(len(v) - 1 for v in collector_dups.values())
    if agent.count_log("collector: ebpf"):
        # The eBPF source misses no exec: every one of the burst is there.
        assert distinct == BURST
    assert agent.count_log("engine (pid") >= 3


def test_kill_procmond_during_burst_exactly_once(agent):
    marker = "depmd" + uuid.uuid4().hex[:8]
    b = burst(BURST, marker)
    accepted = []
    for _ in range(2):
        time.sleep(random.uniform(0.3, 1.5))
        pid = agent.collector_pid()
        assert pid, agent.tail()
        # What the WAL holds at the kill is what procmond had accepted.
        copy = snapshot_wal(agent, pid)
        os.kill(pid, signal.SIGKILL)
        accepted += wal_marked_seqs(copy, marker)
        assert wait_for(lambda: agent.collector_pid() not in (None, pid), 10), agent.tail()
        assert wait_for(agent.registered, 15), agent.tail()
    assert b.wait(120) == 0
    assert accepted, "the WAL copies held no marked event: the kills came too early"
    ok = wait_for(lambda: not rows_for_seqs(agent.db, accepted), 60, 0.5)
    assert ok, (rows_for_seqs(agent.db, accepted)[:10], agent.tail())
    collector_dups = check_exactly_once(agent.db, marker)
    rows, distinct = marked(agent.db, marker)
    assert rows == distinct + sum(len(v) - 1 for v in collector_dups.values())
    # After the restarts nothing is missed: a second burst arrives whole.
    burst_arrives_whole(agent, marker + "b", 500)
    assert agent.count_log("collector procmond (pid") >= 2
    health = json.loads(control(agent.sock)[1])
    sup = {c["id"]: c for c in health["supervised"]}
    assert sup["procmond"]["restarts"] >= 2 and sup["procmond"]["running"]
    assert "killed by signal 9" in sup["procmond"]["last_exit"]


def test_kill_whole_agent_during_burst_exactly_once(agent):
    marker = "deagt" + uuid.uuid4().hex[:8]
    b = burst(BURST, marker)
    time.sleep(random.uniform(0.3, 1.5))
    pid = agent.collector_pid()
    copy = snapshot_wal(agent, pid)
    os.kill(agent.proc.pid, signal.SIGKILL)  # the supervisor; the engine dies with it
    os.kill(pid, signal.SIGCONT)  # procmond notices its parent is gone and stops
    assert wait_for(lambda: not Path(f"/proc/{pid}").exists() or
                    "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3], 15)
    assert b.wait(120) == 0
    accepted = wal_marked_seqs(copy, marker)
    agent.proc.wait(5)
    agent.start()
    ok = wait_for(lambda: not rows_for_seqs(agent.db, accepted), 60, 0.5)
    assert ok, (rows_for_seqs(agent.db, accepted)[:10], agent.tail())
    collector_dups = check_exactly_once(agent.db, marker)
    rows, distinct = marked(agent.db, marker)
    assert rows == distinct + sum(len(v) - 1 for v in collector_dups.values())
    burst_arrives_whole(agent, marker + "b", 300)


# ---- the adaptive group-commit window ---------------------------------------


def _health(agent):
    return json.loads(control(agent.sock)[1])


def _window_ms(agent):
    """procmond's group-commit window as of the agent's last health RPC to it
    (one every 5 s), or None before the first."""
    for c in _health(agent).get("collectors", []):
        if c.get("id") == "procmond":
            return (c.get("collector_health") or {}).get("sync_window_ms")
    return None


def _frames(agent):
    h = _health(agent)
    return h["broker"]["merged_frames"] + h["ingest"]["batches"]


def test_group_commit_window_stretches_under_load_and_returns(agent):
    """Sustained execs stretch procmond's window (fewer, bigger frames: a
    10 ms window would send ~100 frames/s); once they stop, a few lone execs
    bring it back to 10 ms, so light load is committed and sent at once."""
    marker = "dewin" + uuid.uuid4().hex[:8]
    f0, t0 = _frames(agent), time.monotonic()
    b = subprocess.Popen([BUILD / "bench/burst", "10000", marker, BUILD / "bench/burst-child",
                          "4", "0", "1000"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen = []

    def stretched():
        seen.append(_window_ms(agent))
        return (seen[-1] or 0) > 10

    try:
        assert wait_for(stretched, 15, 0.5), (seen, agent.tail())
    finally:
        assert b.wait(60) == 0
    frames, secs = _frames(agent) - f0, time.monotonic() - t0
    assert frames / secs < 60, (frames, secs)
    assert marked(agent.db, marker)[0] > 0

    def lone_exec_and_window():
        subprocess.run(["/bin/true"])
        return _window_ms(agent) == 10

    assert wait_for(lone_exec_and_window, 20, 0.5), agent.tail()


# ---- bad peers ------------------------------------------------------------


def _healthy(agent):
    status, body = control(agent.sock)
    return status == 0 and '"state"' in body


def _closed_by_agent(s, timeout=5):
    s.settimeout(timeout)
    try:
        while True:
            if not s.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


BAD = {
    "random bytes": os.urandom(4096),
    "huge length": struct.pack("<IHHI", 0x7FFFFFFF, T_REGISTER, 0, 0),
    "bad crc": frame(T_CONTROL_REQUEST, f_bytes(1, "health"))[:-1] + b"X",
    "unexpected type": frame(T_ACK, f_varint(1, 5)),
    "malformed payload": frame(T_REGISTER, b"\xff\xff\xff\xff"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_peer_closed_and_logged(agent, name):
    before = agent.count_log("broker: closing")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(agent.sock))
        s.sendall(BAD[name])
        assert _closed_by_agent(s), name
    assert wait_for(lambda: agent.count_log("broker: closing") == before + 1, 5), agent.tail()
    assert _healthy(agent)
    assert agent.proc.poll() is None


def test_truncated_frame_then_close(agent):
    before = agent.count_log("truncated frame")
    f = frame(T_CONTROL_REQUEST, f_bytes(1, "health"))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(agent.sock))
        s.sendall(f[:-3])
    assert wait_for(lambda: agent.count_log("truncated frame") == before + 1, 5), agent.tail()
    assert _healthy(agent)


def test_slow_reader_does_not_stall_others(agent):
    """A client that sends requests and never reads: it is cut off when its
    output queue is full; meanwhile and afterwards the agent serves others."""
    req = frame(T_CONTROL_REQUEST, f_bytes(1, "ping"))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(agent.sock))
    s.setblocking(False)
    stop = threading.Event()

    def flood():
        while not stop.is_set():
            try:
                s.send(req * 256)
            except BlockingIOError:
                time.sleep(0.01)
            except OSError:
                return

    t = threading.Thread(target=flood, daemon=True)
    t.start()
    try:
        for _ in range(5):
            assert _healthy(agent)
            time.sleep(0.2)
        # Its answers pile up to the output bound; then it is cut off.
        assert wait_for(lambda: agent.count_log("peer does not read"), 30), agent.tail()
    finally:
        stop.set()
        t.join(5)
        s.close()
    assert _healthy(agent)
    assert agent.proc.poll() is None


# ---- credentials ------------------------------------------------------------


def _connect_as(uid, gid, path):
    """Connects from a child running as uid:gid; returns 'refused', 'closed' or 'served'."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        res = b"error"
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                try:
                    s.connect(str(path))
                except PermissionError:
                    res = b"refused"
                else:
                    try:
                        s.sendall(frame(T_CONTROL_REQUEST, f_bytes(1, "ping")))
                        res = b"served" if recv_frame(s, 5) else b"closed"
                    except (ConnectionResetError, BrokenPipeError):
                        res = b"closed"
                    except socket.timeout:
                        res = b"left open"
        finally:
            os.write(w, res)
            os._exit(0)
    os.close(w)
    out = os.read(r, 64).decode()
    os.close(r)
    os.waitpid(pid, 0)
    return out


def test_socket_mode_and_stranger_refused(agent):
    st = agent.sock.stat()
    assert st.st_mode & 0o777 == 0o660
    # The file mode alone keeps a stranger out ...
    assert _connect_as(12345, 12345, agent.sock) == "refused"
    # ... and with the mode opened up, the peer-credential check still does.
    os.chmod(agent.sock, 0o666)
    os.chmod(agent.datadir, 0o755)
    before = agent.count_log("refused a connection from")
    assert _connect_as(12345, 12345, agent.sock) == "closed"
    assert wait_for(lambda: agent.count_log("refused a connection from") == before + 1, 5)
    assert "uid 12345" in agent.tail(5)
    # root is always let in.
    assert _healthy(agent)


# ---- a second collector ---------------------------------------------------------


def _event(seq, pid, name, start_time):
    rec = (f_varint(1, pid) + f_varint(2, 1) + f_bytes(3, name) + f_bytes(4, "/usr/bin/" + name)
           + f_bytes(5, name + " --from-test-collector") + f_varint(6, start_time)
           + f_varint(7, 1000 + pid) + f_double(8, 0.0) + f_varint(9, 4096)
           + f_varint(11, 0) + f_varint(12, 0) + f_varint(13, 0) + f_varint(18, 1)
           + f_varint(19, 1) + f_varint(20, 1) + f_varint(21, 0) + f_varint(22, 0)
           + f_varint(23, 0) + f_varint(29, 0))
    return (f_varint(1, 1) + f_varint(2, int(time.time() * 1000)) + f_varint(3, seq)
            + f_bytes(4, "test") + f_bytes(5, rec) + f_varint(6, -1) + f_varint(7, 0))


def test_second_collector_registers_and_is_stored(agent):
    cid = "testcol" + uuid.uuid4().hex[:6]
    reg = (f_bytes(1, cid) + f_bytes(2, "process") + f_varint(3, 1) + f_varint(4, os.getpid())
           + f_varint(5, 30) + f_varint(6, 0))
    base = int(time.time() * 1000)
    batch = b"".join(f_bytes(1, _event(i, 900000 + i, "tc%d" % i, base + i)) for i in (1, 2, 3))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(agent.sock))
        s.sendall(frame(T_REGISTER, reg))
        ftype, payload = recv_frame(s)
        assert ftype == T_REGISTER_ACK
        ack = parse_pb(payload)
        assert ack[1][0] == 1, ack  # accepted
        assert ack[4][0] == 0  # nothing stored yet for this collector
        s.sendall(frame(T_EVENTS, batch))
        ftype, payload = recv_frame(s)
        while ftype != T_ACK:
            ftype, payload = recv_frame(s)
        assert parse_pb(payload)[1][0] == 3
        # A replay of the same batch is acknowledged and ignored.
        s.sendall(frame(T_EVENTS, batch))
        ftype, payload = recv_frame(s)
        while ftype != T_ACK:
            ftype, payload = recv_frame(s)
        assert parse_pb(payload)[1][0] == 3
        status, body = control(agent.sock)
        assert cid in body and "procmond" in body  # both collectors at once
    with sqlite3.connect(f"file:{agent.db}?mode=ro", uri=True) as c:
        rows = c.execute("SELECT seq, pid, name FROM process_events WHERE collector_id = ? "
                         "ORDER BY seq", (cid,)).fetchall()
        hw = c.execute("SELECT high_water FROM collector_state WHERE collector_id = ?",
                       (cid,)).fetchone()
    assert rows == [(1, 900001, "tc1"), (2, 900002, "tc2"), (3, 900003, "tc3")]
    assert hw == (3,)
    # Back after a disconnect, the collector learns its high-water; a second
    # connection with the same id at the same time is refused.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s1, \
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s2:
        s1.connect(str(agent.sock))
        s1.sendall(frame(T_REGISTER, reg))
        ftype, payload = recv_frame(s1)
        assert ftype == T_REGISTER_ACK and parse_pb(payload)[4][0] == 3
        s2.connect(str(agent.sock))
        s2.sendall(frame(T_REGISTER, reg))
        ftype, payload = recv_frame(s2)
        assert ftype == T_REGISTER_ACK and parse_pb(payload)[1][0] == 0


def test_sigterm_stops_everything_within_5s(agent):
    pids = [agent.engine_pid(), agent.collector_pid()]
    t0 = time.monotonic()
    os.kill(agent.proc.pid, signal.SIGTERM)
    assert agent.proc.wait(6) == 0
    assert time.monotonic() - t0 < 5.5
    for p in pids:
        assert wait_for(lambda: not Path(f"/proc/{p}").exists(), 2), p
    assert not agent.sock.exists()


def test_sighup_bad_config_keeps_running_one(agent):
    good = agent.cfg.read_text()
    agent.cfg.write_text(good + "bogus_section: {}\n")
    os.kill(agent.proc.pid, signal.SIGHUP)
    assert wait_for(lambda: agent.count_log("configuration refused, keeping the running one"), 5)
    assert "bogus_section" in agent.tail(3)
    assert _healthy(agent)
    # A good one with a new scan interval: procmond is told by RPC.
    agent.cfg.write_text(good.replace("agent:\n", "agent:\n  scan_interval_ms: 700\n", 1))
    os.kill(agent.proc.pid, signal.SIGHUP)
    assert wait_for(lambda: agent.count_log("configuration and rules reloaded"), 5), agent.tail()
    assert wait_for(lambda: agent.count_log("snapshot interval now 700 ms"), 5), agent.tail()
    health = json.loads(control(agent.sock)[1])
    assert health["reloads"] == {"ok": 1, "failed": 1}
    assert health["state"] == "SteadyState"


def test_engine_runs_unprivileged_supervisor_keeps_root(agent):
    """SPEC §8: the engine has no capabilities, a non-root uid, NoNewPrivs 1
    and Seccomp 2; the supervisor that spawns procmond stays as started."""
    def status(pid):
        return dict(line.split(":", 1) for line in
                    Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)

    eng = status(agent.engine_pid())
    assert eng["Uid"].split()[0] != "0" and eng["Uid"].split()[1] != "0"
    assert int(eng["CapEff"].strip(), 16) == 0
    assert int(eng["CapPrm"].strip(), 16) == 0
    assert eng["NoNewPrivs"].strip() == "1"
    assert eng["Seccomp"].strip() == "2"
    sup = status(agent.proc.pid)
    assert sup["Uid"].split()[0] == "0"
    # The data directory and the socket belong to the engine's user.
    uid = int(eng["Uid"].split()[1])
    assert agent.datadir.stat().st_uid == uid and agent.sock.stat().st_uid == uid


# ---- procmond's publisher against a scripted agent ----------------------------


class FakeAgent:
    """A minimal agent: accepts one collector, answers Register, records the
    events it receives, and sends what the test tells it to."""

    def __init__(self, path):
        self.path = str(path)
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(self.path)
        os.chmod(self.path, 0o777)
        self.srv.listen(4)
        self.conn = None

    def accept(self, high_water, timeout=20):
        self.srv.settimeout(timeout)
        self.conn, _ = self.srv.accept()
        ftype, payload = recv_frame(self.conn)
        assert ftype == T_REGISTER
        reg = parse_pb(payload)
        ack = f_varint(1, 1) + f_varint(2, 1) + f_varint(4, high_water) + f_varint(5, 30)
        self.conn.sendall(frame(T_REGISTER_ACK, ack))
        return reg

    def events(self, seconds):
        """Sequences of the events received within seconds."""
        seqs, end = [], time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                f = recv_frame(self.conn, max(0.05, end - time.monotonic()))
            except socket.timeout:
                break
            if f is None:
                break
            if f[0] == T_EVENTS:
                for ev in parse_pb(f[1]).get(1, []):
                    seqs.append(parse_pb(ev)[3][0])
        return seqs

    def send(self, ftype, payload):
        self.conn.sendall(frame(ftype, payload))

    def close(self):
        if self.conn:
            self.conn.close()
        self.srv.close()


def test_publisher_backpressure_ack_and_replay(daemons, tmp_path):
    """procmond alone against a scripted agent: back-pressure pauses sending
    while the WAL keeps growing, nothing is dropped, and
    after a kill -9 procmond resends exactly what was not acknowledged."""
    d = tmp_path / "pm"
    d.mkdir()
    for p in (tmp_path, d):
        os.chmod(p, 0o777)
    fake = FakeAgent(d / "agent.sock")
    wal = d / "wal"
    env = dict(os.environ, DAEMONEYE_BROKER_SOCKET=str(d / "agent.sock"))
    argv = [BUILD / "src/procmond/procmond", "--wal-dir", wal, "--no-hash"]
    pm = daemons.start(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        reg = fake.accept(0)
        assert reg[1][0] == b"procmond" and reg[3][0] == 1
        first = fake.events(2.0)  # the first snapshot
        assert first and first == list(range(1, len(first) + 1))
        fake.send(6, f_varint(1, 1) + f_varint(2, 0))  # Backpressure on
        time.sleep(0.3)
        inflight = fake.events(0.3)  # sent before the pause reached procmond
        assert burst(200, "bpon" + uuid.uuid4().hex[:6]).wait(30) == 0
        assert fake.events(1.5) == []  # paused ...
        assert sum(f.stat().st_size for f in wal.glob("procmond-*.wal")) > 0  # ... the WAL holds
        fake.send(6, f_varint(1, 0) + f_varint(2, 0))  # off
        resumed = fake.events(3.0)
        assert resumed, "procmond did not resume after back-pressure"
        got = first + inflight + resumed
        assert got == list(range(1, len(got) + 1)), "a sequence was skipped"
        # Acknowledge half; then kill -9: the restart resends from there on.
        half = got[len(got) // 2]
        fake.send(T_ACK, f_varint(1, half))
        time.sleep(0.5)
        os.kill(pm.pid, signal.SIGKILL)
        pm.wait(5)
        fake.conn.close()
        pm2 = daemons.start(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        fake.accept(half)
        again = fake.events(3.0)
        assert again[0] == half + 1, again[:5]
        assert set(range(half + 1, got[-1] + 1)) <= set(again)
        assert again == sorted(again) and len(again) == len(set(again))
        daemons.stop(pm2)
    finally:
        fake.close()


def test_nobody_refused_when_agent_runs_as_another_user(daemons, datadir, tmp_path):
    """With agent.user (and procmond.user) set to `daemon`, a process running
    as `nobody` is kept out by the socket's mode and, with the mode widened,
    by the peer-credential check; the collector running as daemon gets in."""
    rules = tmp_path / "rules"
    rules.mkdir()
    rules.chmod(0o755)
    extra = "procmond:\n  user: daemon\n"
    a = Agent(daemons, datadir, rules, extra)
    a.cfg.write_text(a.cfg.read_text().replace("agent:\n", "agent:\n  user: daemon\n", 1))
    a.start()
    assert "daemon" in json.loads(control(a.sock)[1])["user"]
    assert _connect_as(65534, 65534, a.sock) == "refused"
    os.chmod(a.sock, 0o666)
    os.chmod(a.datadir, 0o755)
    before = a.count_log("refused a connection from")
    assert _connect_as(65534, 65534, a.sock) == "closed"
    assert wait_for(lambda: a.count_log("refused a connection from") == before + 1, 5)
    assert "uid 65534" in a.tail(5)
    assert a.registered()  # procmond (as daemon) is registered and the agent serves root
