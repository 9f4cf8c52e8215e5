"""Alert sinks end to end, through tests/tools/alertdrive (the real alert.c,
spool and sinks): the file sink with rotation, syslog into a real rsyslogd on
loopback, a webhook into a real HTTP server, and for both network sinks the
receiver going down: alerts spooled, then delivered once it is back, in
order, none lost, none duplicated. Only 127.0.0.1 is used.
"""
import http.server
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import BUILD, wait_for

ALERTDRIVE = BUILD / "tests" / "unit" / "alertdrive"
RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"

SPEC_KEYS = {"alert_id", "timestamp", "host", "rule_id", "rule_name", "severity",
             "category", "title", "description", "dedup_key", "process", "match"}
PROCESS_KEYS = {"pid", "ppid", "name", "executable_path", "command_line", "user_id",
                "start_time", "executable_hash"}


def need_alertdrive():
    if not ALERTDRIVE.exists():
        pytest.fail(f"{ALERTDRIVE} is not built: run `make build` first")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(tmp_path, sinks, name="config.yaml"):
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    lines = ["agent:", f"  data_dir: {data}", "alerting:", "  dedup_window_s: 300",
             "  max_alerts_per_minute: 1000000", "  sinks:"]
    for s in sinks:
        first = True
        for k, v in s.items():
            lines.append(("    - " if first else "      ") + f"{k}: {v}")
            first = False
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def drive(config, *args, stdin=None, timeout=60, env=None):
    need_alertdrive()
    p = subprocess.run([str(ALERTDRIVE), "--config", str(config), *map(str, args)],
                       input=stdin, capture_output=True, text=True, timeout=timeout,
                       env=env)
    assert p.returncode == 0, p.stderr
    return p


def health(path):
    return json.loads(Path(path).read_text())


def sink_health(h, typ):
    return next(s for s in h["sinks"] if s["type"] == typ)


def check_alert(a):
    assert set(a) == SPEC_KEYS
    assert set(a["process"]) == PROCESS_KEYS
    assert a["timestamp"].endswith("Z") and len(a["timestamp"]) == 24
    assert len(a["alert_id"]) == 36 and a["alert_id"][14] == "7"
    assert a["dedup_key"] == f'{a["rule_id"]}:{a["process"]["pid"]}:' + \
        a["dedup_key"].rsplit(":", 1)[1]


# ---------------------------------------------------------------- file sink

def test_file_sink_lines_and_rotation(tmp_path):
    out = tmp_path / "alerts.jsonl"
    cfg = write_config(tmp_path, [{"type": "file", "path": out, "max_bytes": 4096,
                                   "max_files": 2}])
    drive(cfg, "--count", 40, "--pid-base", 5000, "--health-out", tmp_path / "h.json")
    files = [Path(f"{out}.2"), Path(f"{out}.1"), out]
    assert all(f.exists() for f in files)
    assert not Path(f"{out}.3").exists()
    alerts = []
    for f in files:
        assert f.stat().st_size <= 4096
        alerts += [json.loads(line) for line in f.read_text().splitlines()]
    for a in alerts:
        check_alert(a)
    pids = [a["process"]["pid"] for a in alerts]
    # The newest alerts survive rotation, in order and without gaps.
    assert pids == list(range(5040 - len(pids), 5040))
    h = health(tmp_path / "h.json")
    assert h["raised"] == 40
    assert sink_health(h, "file")["delivered"] == 40


def test_dedup_through_the_driver(tmp_path):
    out = tmp_path / "alerts.jsonl"
    cfg = write_config(tmp_path, [{"type": "file", "path": out}])
    lines = [{"rule_id": "r1", "pid": 77, "start_time": 1000},
             {"rule_id": "r1", "pid": 77, "start_time": 1000},   # same instance: repeat
             {"rule_id": "r1", "pid": 77, "start_time": 2000},   # pid reused: new instance
             {"rule_id": "r2", "pid": 77, "start_time": 1000}]   # another rule
    p = drive(cfg, "--stdin", "--health-out", tmp_path / "h.json",
              stdin="\n".join(json.dumps(x) for x in lines) + "\n")
    assert [l.split()[1] for l in p.stdout.splitlines()] == \
        ["raised", "duplicate", "raised", "raised"]
    got = [json.loads(l)["dedup_key"] for l in out.read_text().splitlines()]
    assert got == ["r1:77:1000", "r1:77:2000", "r2:77:1000"]
    h = health(tmp_path / "h.json")
    assert h["duplicates"] == 1 and h["raised"] == 3


def test_rate_limit_counts_what_it_drops(tmp_path):
    out = tmp_path / "alerts.jsonl"
    cfg = write_config(tmp_path, [{"type": "file", "path": out}])
    cfg.write_text(cfg.read_text().replace("max_alerts_per_minute: 1000000",
                                           "max_alerts_per_minute: 5"))
    p = drive(cfg, "--count", 12, "--health-out", tmp_path / "h.json")
    assert len(out.read_text().splitlines()) == 5
    h = health(tmp_path / "h.json")
    assert h["raised"] == 5 and h["rate_limited"] == 7
    assert h["max_alerts_per_minute"] == 5
    assert sink_health(h, "file")["delivered"] == 5
    assert "max_alerts_per_minute" in p.stderr   # said in the log, not silent


# ---------------------------------------------------------------- syslog

def test_stdout_csv_neutralises_formulas(tmp_path):
    """The stdout csv sink through the real pipeline: process names and command
    lines that a spreadsheet would run as formulas arrive as text (a leading
    single quote inside RFC 4180 quoting); Python's csv module reads them back."""
    import csv
    import io
    need_alertdrive()
    hostile = ["=cmd|' /C calc'!A0", "+1+cmd", "-2+3", "@SUM(1,2)", "\tx", "\rdown"]
    lines = [{"rule_id": "csv-check", "pid": 500 + i, "start_time": 1000 + i, "name": h,
              "command_line": h + " --arg"} for i, h in enumerate(hostile)]
    cfg = write_config(tmp_path, [{"type": "stdout", "format": "csv"}])
    p = subprocess.run([str(ALERTDRIVE), "--config", str(cfg), "--no-store", "--stdin"],
                       input=("\n".join(json.dumps(x) for x in lines) + "\n").encode(),
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    text = p.stdout.decode()
    # The driver prints "N raised" lines on the same stdout as the sink's
    # worker thread, so they can land before or between the rows (each
    # row is one write): take them out, then read the CSV.
    text = re.sub(r"(?m)^\d+ (raised|duplicate|rate_limited|error)\n", "", text)
    text = text[text.index("alert_id,timestamp,"):]
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [r["process_name"] for r in rows] == ["'" + h for h in hostile]
    assert [r["command_line"] for r in rows] == ["'" + h + " --arg" for h in hostile]
    assert [r["pid"] for r in rows] == [str(500 + i) for i in range(len(hostile))]
    for r in rows:
        for k, v in r.items():
            assert not v or v[0] not in "=+-@\t\r", (k, v)


class Rsyslog:
    """A private rsyslogd: imtcp on 127.0.0.1:port, omfile into out."""

    def __init__(self, tmp_path, port):
        self.dir = tmp_path / "rsyslog"
        self.dir.mkdir(exist_ok=True)
        self.port = port
        self.out = self.dir / "out.log"
        self.conf = self.dir / "rsyslog.conf"
        self.conf.write_text(f"""
global(workDirectory="{self.dir}" maxMessageSize="64k")
module(load="imtcp")
template(name="de" type="string"
         string="%syslogfacility-text%|%syslogseverity-text%|%app-name%|%msgid%|%structured-data%|%msg%\\n")
ruleset(name="de") {{
  action(type="omfile" file="{self.out}" template="de" flushOnTXEnd="on")
}}
input(type="imtcp" port="{port}" address="127.0.0.1" ruleset="de")
""")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [RSYSLOGD, "-n", "-f", str(self.conf), "-i", str(self.dir / "pid")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)

        def listening():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                return False
        assert wait_for(listening, timeout=10), "rsyslogd did not start listening"

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)
        self.proc = None

    def records(self):
        if not self.out.exists():
            return []
        recs = []
        for line in self.out.read_text().splitlines():
            fac, sev, app, msgid, sd, msg = line.split("|", 5)
            recs.append({"facility": fac, "severity": sev, "app": app, "msgid": msgid,
                         "sd": sd, "alert": json.loads(msg.strip())})
        return recs


@pytest.fixture
def rsyslog(tmp_path):
    if not os.path.exists(RSYSLOGD):
        pytest.skip("rsyslogd is not installed")
    r = Rsyslog(tmp_path, free_port())
    yield r
    r.stop()


def test_syslog_rfc5424_into_rsyslog(tmp_path, rsyslog):
    rsyslog.start()
    cfg = write_config(tmp_path, [{"type": "syslog", "facility": "local4",
                                   "server": f"tcp://127.0.0.1:{rsyslog.port}"}])
    drive(cfg, "--count", 5, "--pid-base", 100, "--severity", "critical")
    recs = wait_for(lambda: len(rsyslog.records()) >= 5 and rsyslog.records())
    assert recs and len(recs) == 5
    for i, r in enumerate(recs):
        assert r["facility"] == "local4" and r["severity"] == "crit"
        assert r["app"] == "daemoneye" and r["msgid"] == "alert"
        check_alert(r["alert"])
        assert r["alert"]["process"]["pid"] == 100 + i
        assert f'alert_id="{r["alert"]["alert_id"]}"' in r["sd"]
        assert 'severity="critical"' in r["sd"]


def test_syslog_down_spooled_then_delivered(tmp_path, rsyslog):
    cfg = write_config(tmp_path, [{"type": "syslog",
                                   "server": f"tcp://127.0.0.1:{rsyslog.port}"}])
    rsyslog.start()
    drive(cfg, "--count", 5, "--pid-base", 1000)
    assert wait_for(lambda: len(rsyslog.records()) == 5)
    rsyslog.stop()
    # Receiver down: everything goes to the spool, the driver does not hang.
    t0 = time.monotonic()
    drive(cfg, "--count", 10, "--pid-base", 2000, "--flush-ms", 3000,
          "--health-out", tmp_path / "down.json")
    assert time.monotonic() - t0 < 15
    s = sink_health(health(tmp_path / "down.json"), "syslog")
    assert s["spooled"] == 10 and s["spool_depth"] == 10 and s["delivered"] == 0
    assert s["failed"] >= 1 and s["state"] == "down" and s["dropped"] == 0
    # Back: the spool is replayed first (after a restart of the driver), then new alerts.
    rsyslog.start()
    drive(cfg, "--count", 5, "--pid-base", 3000, "--wait-spool", "--flush-ms", 20000,
          "--health-out", tmp_path / "up.json")
    s = sink_health(health(tmp_path / "up.json"), "syslog")
    assert s["delivered"] == 15 and s["spool_depth"] == 0
    want = list(range(1000, 1005)) + list(range(2000, 2010)) + list(range(3000, 3005))
    assert wait_for(lambda: len(rsyslog.records()) >= len(want))
    time.sleep(0.3)
    got = [r["alert"]["process"]["pid"] for r in rsyslog.records()]
    assert got == want


# ---------------------------------------------------------------- syslog over TLS

def make_certs(d):
    """A throw-away CA and a server certificate for 127.0.0.1 (openssl CLI)."""
    def run(*a):
        subprocess.run(["openssl", *a], check=True, capture_output=True, cwd=d)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
        "-subj", "/CN=DaemonEye test CA")
    run("req", *ec, "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "srv.pem", "-days", "1", "-extfile", "ext.cnf")
    return d / "ca.pem", d / "srv.pem", d / "srv.key"


def make_client_cert(d, name):
    """A client certificate CN=name signed by make_certs's CA (client auth)."""
    def run(*a):
        subprocess.run(["openssl", *a], check=True, capture_output=True, cwd=d)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
    (d / "cli.cnf").write_text("extendedKeyUsage=clientAuth\n")
    run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", f"{name}.pem", "-days", "1", "-extfile", "cli.cnf")
    return d / f"{name}.pem", d / f"{name}.key"


def peer_cn(conn):
    cert = conn.getpeercert() or {}
    for rdn in cert.get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                return v
    return None


class TlsSyslog:
    """A TLS syslog receiver (RFC 5425 framing) on 127.0.0.1, in a thread."""

    def __init__(self, cert, key, client_ca=None):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        if client_ca:   # mutual TLS: a client certificate from this CA, or no session
            self.ctx.verify_mode = ssl.CERT_REQUIRED
            self.ctx.load_verify_locations(client_ca)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.msgs, self.peers = [], []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn):
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as c:
                self.peers.append(peer_cn(c))
                buf = b""
                while True:
                    data = c.recv(65536)
                    if not data:
                        return
                    buf += data
                    while b" " in buf:
                        n, rest = buf.split(b" ", 1)
                        if len(rest) < int(n):
                            break
                        self.msgs.append(rest[:int(n)].decode())
                        buf = rest[int(n):]
        except (ssl.SSLError, OSError):
            return

    def close(self):
        self.sock.close()


def test_syslog_tls_verified_spooled_then_delivered(tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("openssl CLI not installed")
    ca, cert, key = make_certs(tmp_path)
    srv = TlsSyslog(cert, key)
    try:
        cfg = write_config(tmp_path, [{"type": "syslog",
                                       "server": f"tls://127.0.0.1:{srv.port}"}])
        # Our CA is not trusted by default: the certificate is refused, alerts spooled.
        env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
        drive(cfg, "--count", 3, "--pid-base", 40, "--flush-ms", 1500,
              "--health-out", tmp_path / "untrusted.json", env=env)
        s = sink_health(health(tmp_path / "untrusted.json"), "syslog")
        assert s["delivered"] == 0 and s["spool_depth"] == 3
        assert "certificate" in s["last_error"]
        assert srv.msgs == []
        # Trusted: the spool first, then the new ones, over TLS.
        drive(cfg, "--count", 2, "--pid-base", 50, "--wait-spool", "--flush-ms", 20000,
              "--health-out", tmp_path / "trusted.json", env=dict(env, SSL_CERT_FILE=str(ca)))
        s = sink_health(health(tmp_path / "trusted.json"), "syslog")
        assert s["delivered"] == 5 and s["spool_depth"] == 0
        assert wait_for(lambda: len(srv.msgs) == 5)
        pids = [json.loads(m[m.index("] {") + 2:])["process"]["pid"] for m in srv.msgs]
        assert pids == [40, 41, 42, 50, 51]
        assert all(m.startswith("<35>1 ") for m in srv.msgs)   # auth (4) * 8 + err (3)
    finally:
        srv.close()


def test_syslog_mutual_tls_client_certificate(tmp_path):
    """A TLS syslog receiver that requires a client certificate (CERT_REQUIRED): without
    client_cert/client_key the session is refused and the alerts are spooled; with them
    (and the private CA as the sink's own ca_file, no SSL_CERT_FILE) the spool and the
    new alerts arrive, in order, over a session that presented our certificate."""
    if not shutil.which("openssl"):
        pytest.skip("openssl CLI not installed")
    ca, cert, key = make_certs(tmp_path)
    ccert, ckey = make_client_cert(tmp_path, "daemoneye-agent")
    srv = TlsSyslog(cert, key, client_ca=ca)
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    try:
        base = {"type": "syslog", "server": f"tls://127.0.0.1:{srv.port}", "ca_file": ca}
        cfg = write_config(tmp_path, [base])
        drive(cfg, "--count", 3, "--pid-base", 40, "--flush-ms", 1500,
              "--health-out", tmp_path / "nocert.json", env=env)
        s = sink_health(health(tmp_path / "nocert.json"), "syslog")
        assert s["delivered"] == 0 and s["spool_depth"] == 3, s
        assert srv.msgs == []
        cfg = write_config(tmp_path, [dict(base, client_cert=ccert, client_key=ckey)])
        drive(cfg, "--count", 2, "--pid-base", 50, "--wait-spool", "--flush-ms", 20000,
              "--health-out", tmp_path / "cert.json", env=env)
        s = sink_health(health(tmp_path / "cert.json"), "syslog")
        assert s["delivered"] == 5 and s["spool_depth"] == 0, s
        assert wait_for(lambda: len(srv.msgs) == 5)
        pids = [json.loads(m[m.index("] {") + 2:])["process"]["pid"] for m in srv.msgs]
        assert pids == [40, 41, 42, 50, 51]
        assert "daemoneye-agent" in srv.peers
    finally:
        srv.close()


def test_tls_client_files_refused_at_start(tmp_path):
    """A key that does not match its certificate, an unreadable CA file, a client_cert
    without a tls:// server: the sink refuses to open, with the file and the reason."""
    if not shutil.which("openssl"):
        pytest.skip("openssl CLI not installed")
    ca, cert, key = make_certs(tmp_path)
    ccert, ckey = make_client_cert(tmp_path, "c1")
    cases = [
        ({"type": "webhook", "url": "https://127.0.0.1:1/", "client_cert": ccert,
          "client_key": key}, "mismatch"),
        ({"type": "syslog", "server": "tls://127.0.0.1:1", "ca_file": tmp_path / "none.pem"},
         "ca_file"),
        ({"type": "webhook", "url": "https://127.0.0.1:1/", "ca_file": ckey}, "ca_file"),
        ({"type": "syslog", "server": "tcp://127.0.0.1:1", "client_cert": ccert,
          "client_key": ckey}, "need a tls:// server"),
        ({"type": "webhook", "url": "https://127.0.0.1:1/", "client_cert": ccert},
         "go together"),
    ]
    for sink, why in cases:
        cfg = write_config(tmp_path, [sink])
        p = subprocess.run([str(ALERTDRIVE), "--config", str(cfg), "--no-store", "--count", "1"],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode != 0 and why in p.stderr, (sink, p.stderr)


# ---------------------------------------------------------------- webhook

class Receiver:
    """A real HTTP server on 127.0.0.1 recording POSTed alerts."""

    def __init__(self, port, status=200, delay=0.0):
        self.port, self.status, self.delay = port, status, delay
        self.bodies, self.headers, self.peers = [], [], []
        self.server = None

    def start(self):
        recv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                if recv.delay:
                    time.sleep(recv.delay)
                if recv.status == 200:
                    recv.bodies.append(json.loads(body))
                    recv.headers.append(dict(self.headers))
                    if isinstance(self.connection, ssl.SSLSocket):
                        recv.peers.append(peer_cn(self.connection))
                self.send_response(recv.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True      # a hanging handler must not block teardown
        self.server.block_on_close = False
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture
def receiver():
    made = []

    def make(**kw):
        r = Receiver(free_port(), **kw)
        made.append(r)
        return r
    yield make
    for r in made:
        r.stop()


def test_webhook_delivers_json(tmp_path, receiver):
    r = receiver()
    r.start()
    cfg = write_config(tmp_path, [{"type": "webhook", "url": f"http://127.0.0.1:{r.port}/hook",
                                   "timeout_ms": 2000}])
    drive(cfg, "--count", 8, "--pid-base", 10, "--health-out", tmp_path / "h.json")
    assert [b["process"]["pid"] for b in r.bodies] == list(range(10, 18))
    for b in r.bodies:
        check_alert(b)
    assert r.headers[0]["Content-Type"] == "application/json"
    assert sink_health(health(tmp_path / "h.json"), "webhook")["delivered"] == 8


def test_webhook_down_spooled_then_delivered(tmp_path, receiver):
    r = receiver()
    cfg = write_config(tmp_path, [{"type": "webhook", "url": f"http://127.0.0.1:{r.port}/",
                                   "timeout_ms": 1000}])
    # Down (nothing listening): spooled.
    drive(cfg, "--count", 12, "--pid-base", 500, "--flush-ms", 2000,
          "--health-out", tmp_path / "down.json")
    s = sink_health(health(tmp_path / "down.json"), "webhook")
    assert s["spooled"] == 12 and s["spool_depth"] == 12 and s["delivered"] == 0
    # A 503 is a failure too: still spooled, retried.
    r.status = 503
    r.start()
    drive(cfg, "--count", 3, "--pid-base", 600, "--flush-ms", 1500,
          "--health-out", tmp_path / "busy.json")
    s = sink_health(health(tmp_path / "busy.json"), "webhook")
    assert s["spool_depth"] == 15 and s["delivered"] == 0 and s["retried"] >= 1
    # Healthy again: delivered in order, exactly once each.
    r.status = 200
    drive(cfg, "--count", 2, "--pid-base", 700, "--wait-spool", "--flush-ms", 20000,
          "--health-out", tmp_path / "up.json")
    s = sink_health(health(tmp_path / "up.json"), "webhook")
    assert s["delivered"] == 17 and s["spool_depth"] == 0 and s["dropped"] == 0
    want = list(range(500, 512)) + list(range(600, 603)) + list(range(700, 702))
    assert [b["process"]["pid"] for b in r.bodies] == want
    assert len({b["alert_id"] for b in r.bodies}) == len(want)


def test_stop_is_bounded_with_a_hanging_webhook(tmp_path, receiver):
    """A receiver that accepts and never answers, with a 60 s timeout: stopping
    still takes a few seconds, and the alert in flight is spooled, not lost."""
    r = receiver(delay=30.0)
    r.start()
    cfg = write_config(tmp_path, [{"type": "webhook", "url": f"http://127.0.0.1:{r.port}/",
                                   "timeout_ms": 60000}])
    t0 = time.monotonic()
    drive(cfg, "--count", 3, "--pid-base", 900, "--flush-ms", 500)
    assert time.monotonic() - t0 < 5.0
    # The receiver answers again: the spool holds all three, the one that was
    # in flight at the stop included, and delivers them in order.
    r.delay = 0.0
    drive(cfg, "--count", 0, "--wait-spool", "--flush-ms", 20000,
          "--health-out", tmp_path / "h.json")
    h = sink_health(health(tmp_path / "h.json"), "webhook")
    assert h["delivered"] == 3 and h["dropped"] == 0
    assert [b["process"]["pid"] for b in r.bodies] == [900, 901, 902]


def test_webhook_rejection_is_counted_not_retried(tmp_path, receiver):
    r = receiver(status=400)
    r.start()
    cfg = write_config(tmp_path, [{"type": "webhook", "url": f"http://127.0.0.1:{r.port}/"}])
    drive(cfg, "--count", 4, "--health-out", tmp_path / "h.json")
    s = sink_health(health(tmp_path / "h.json"), "webhook")
    assert s["rejected"] == 4 and s["delivered"] == 0 and s["spool_depth"] == 0


def test_dead_sink_does_not_block_the_others(tmp_path, receiver):
    # A webhook that takes 3 s per request (timeout 500 ms) beside a file sink.
    r = receiver(delay=3.0)
    r.start()
    out = tmp_path / "alerts.jsonl"
    cfg = write_config(tmp_path, [
        {"type": "webhook", "url": f"http://127.0.0.1:{r.port}/", "timeout_ms": 500},
        {"type": "file", "path": out}])
    need_alertdrive()
    p = subprocess.Popen([str(ALERTDRIVE), "--config", str(cfg), "--count", "50",
                          "--flush-ms", "1000", "--health-out", str(tmp_path / "h.json")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t0 = time.monotonic()
    assert wait_for(lambda: out.exists() and len(out.read_text().splitlines()) == 50,
                    timeout=5)
    assert time.monotonic() - t0 < 2.0
    p.wait(30)
    h = health(tmp_path / "h.json")
    assert sink_health(h, "file")["delivered"] == 50
    w = sink_health(h, "webhook")
    assert w["delivered"] == 0 and w["failed"] >= 1
    assert w["dropped"] == 0 and w["spooled"] >= 1


def test_webhook_https_verifies_the_certificate(tmp_path, receiver):
    """HTTPS against a server whose CA is not in the system store: refused, spooled."""
    if not shutil.which("openssl"):
        pytest.skip("openssl CLI not installed")
    _, cert, key = make_certs(tmp_path)
    r = receiver()
    r.start()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    r.server.socket = ctx.wrap_socket(r.server.socket, server_side=True)
    cfg = write_config(tmp_path, [{"type": "webhook", "url": f"https://127.0.0.1:{r.port}/",
                                   "timeout_ms": 2000}])
    drive(cfg, "--count", 2, "--flush-ms", 1500, "--health-out", tmp_path / "h.json")
    s = sink_health(health(tmp_path / "h.json"), "webhook")
    assert s["delivered"] == 0 and s["spool_depth"] == 2 and r.bodies == []
    assert "certificate" in s["last_error"]


def test_webhook_mutual_tls_client_certificate(tmp_path, receiver):
    """HTTPS to a server that requires a client certificate from our CA (CERT_REQUIRED),
    trusted through the sink's own ca_file: without client_cert the handshake is refused
    and the alerts spooled, none lost; with it they arrive in order, and the server saw
    our certificate."""
    if not shutil.which("openssl"):
        pytest.skip("openssl CLI not installed")
    ca, cert, key = make_certs(tmp_path)
    ccert, ckey = make_client_cert(tmp_path, "daemoneye-hook")
    r = receiver()
    r.start()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(ca)
    r.server.socket = ctx.wrap_socket(r.server.socket, server_side=True)
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    base = {"type": "webhook", "url": f"https://127.0.0.1:{r.port}/", "timeout_ms": 2000,
            "ca_file": ca}
    cfg = write_config(tmp_path, [base])
    drive(cfg, "--count", 2, "--pid-base", 60, "--flush-ms", 1500,
          "--health-out", tmp_path / "nocert.json", env=env)
    s = sink_health(health(tmp_path / "nocert.json"), "webhook")
    assert s["delivered"] == 0 and s["spool_depth"] == 2 and r.bodies == [], s
    cfg = write_config(tmp_path, [dict(base, client_cert=ccert, client_key=ckey)])
    drive(cfg, "--count", 2, "--pid-base", 70, "--wait-spool", "--flush-ms", 20000,
          "--health-out", tmp_path / "cert.json", env=env)
    s = sink_health(health(tmp_path / "cert.json"), "webhook")
    assert s["delivered"] == 4 and s["spool_depth"] == 0, s
    assert [b["process"]["pid"] for b in r.bodies] == [60, 61, 70, 71]
    assert r.peers and set(r.peers) == {"daemoneye-hook"}


# ---------------------------------------------------------------- the whole agent

DEDUP_RULE = """id: dedup-marker
name: Dedup marker
description: fires on the test's marker command line (T0000)
severity: low
category: test
enabled: true
sql: |
  SELECT pid, name, command_line FROM processes
  WHERE command_line LIKE '%de-dedup-marker-%'
"""


@pytest.mark.root
def test_agent_one_alert_per_instance_then_again_after_window(tmp_path, datadir, daemons,
                                                             bins):
    """Through procmond, the store, a rule and the file sink: a process matched again
    (it execs, same pid and start time) inside the window is a repeat, not a second
    alert; matched again after the window, it alerts again."""
    rules = tmp_path / "rules"
    rules.mkdir()
    rules.chmod(0o755)
    (rules / "dedup-marker.yaml").write_text(DEDUP_RULE)
    out = tmp_path / "alerts.jsonl"
    os.chmod(tmp_path, 0o777)
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(f"agent:\n  data_dir: {datadir}\n  scan_interval_ms: 250\n"
                   f"alerting:\n  dedup_window_s: 2\n"
                   f"  sinks:\n    - {{ type: file, path: {out} }}\n")
    env = dict(os.environ, DAEMONEYE_PROCMOND_BINARY=str(bins["procmond"]))
    agent = daemons.start([bins["daemoneye-agent"], "--config", cfg, "--rules-dir", rules],
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def ready():
        subprocess.run(["/bin/sh", "-c", "sleep 0.3", "de-dedup-marker-warmup"])
        return out.exists() and "warmup" in out.read_text()
    assert wait_for(ready, timeout=30), "the agent raised no alert"
    # a (alert) -> 0.5 s: exec b (same instance, in the window: repeat) -> 3 s: exec c
    # (2 s window over: a new alert for the same instance).
    subprocess.run(["/bin/sh", "-c", "sleep 0.5; exec sh -c 'sleep 2.5; exec sh -c "
                    "\"sleep 1\" de-dedup-marker-c' de-dedup-marker-b", "de-dedup-marker-a"],
                   check=True)
    time.sleep(1.0)
    alerts = [json.loads(l) for l in out.read_text().splitlines()]
    ours = [a for a in alerts if "warmup" not in a["process"]["command_line"]]
    assert len(ours) == 2, ours
    assert ours[0]["dedup_key"] == ours[1]["dedup_key"]
    assert ours[0]["alert_id"] != ours[1]["alert_id"]
    assert "de-dedup-marker-a" in ours[0]["process"]["command_line"]
    assert "de-dedup-marker-c" in ours[1]["process"]["command_line"]
    for a in ours:
        check_alert(a)
    h = subprocess.run([bins["daemoneye-cli"], "--data-dir", datadir, "--format", "json",
                        "health"], capture_output=True, text=True, timeout=10)
    assert h.returncode == 0, h.stderr
    assert json.loads(h.stdout)["alerts"]["duplicates"] >= 1
    daemons.stop(agent)

# ------------------------------------------------- at least once across kill -9

CRASH_RULE = """id: crash-marker
name: Crash marker
description: test rule (T1059)
severity: high
category: execution
sql: |
  SELECT pid, name, command_line FROM processes
  WHERE command_line LIKE '%de-crash-marker-%'
"""


def engine_pid(supervisor_pid):
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        if ppid == supervisor_pid and comm.startswith("daemoneye-agen"):
            return int(d.name)
    return None


def stored_alert_ids(db):
    import sqlite3
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [r[0] for r in con.execute(
            "SELECT alert_id FROM alerts WHERE rule_id = 'crash-marker' ORDER BY rowid")]
    finally:
        con.close()


@pytest.mark.root
@pytest.mark.parametrize("mode", ["slow", "down"])
def test_kill_engine_with_alerts_in_flight_at_least_once(tmp_path, datadir, daemons, bins,
                                                         receiver, mode):
    """Alerts stored and in the ledger but still in the webhook sink's memory queue
    (receiver slow) or on their way to its spool (receiver off) when the engine is
    SIGKILLed: the supervisor restarts it, the sink's "delivered through" marker
    brings back every stored alert it had not finished, and once the receiver
    answers every alert arrives, in the stored order, with at most one duplicate
    (the delivery in flight at the kill: docs/alerting.md)."""
    n = 12
    rules = tmp_path / "rules"
    rules.mkdir()
    rules.chmod(0o755)
    (rules / "crash-marker.yaml").write_text(CRASH_RULE)
    r = receiver(delay=0.5 if mode == "slow" else 0.0)
    if mode == "slow":
        r.start()
    out = tmp_path / "alerts.jsonl"
    os.chmod(tmp_path, 0o777)
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(f"agent:\n  data_dir: {datadir}\n  scan_interval_ms: 250\n"
                   f"alerting:\n  max_alerts_per_minute: 100000\n  sinks:\n"
                   f"    - {{ type: file, path: {out} }}\n"
                   f"    - {{ type: webhook, url: 'http://127.0.0.1:{r.port}/hook',"
                   f" timeout_ms: 5000 }}\n")
    env = dict(os.environ, DAEMONEYE_PROCMOND_BINARY=str(bins["procmond"]))
    agent = daemons.start([bins["daemoneye-agent"], "--config", cfg, "--rules-dir", rules],
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = datadir / "events.db"

    def ready():
        subprocess.run(["/bin/sh", "-c", "sleep 0.2", "de-crash-marker-warmup"])
        return out.exists() and "warmup" in out.read_text()
    assert wait_for(ready, timeout=30, interval=0.5), "the agent raised no alert"
    if mode == "slow":
        assert wait_for(lambda: len(r.bodies) >= 1, timeout=10)
    first = engine_pid(agent.pid)
    assert first
    time.sleep(0.5)  # a second warm-up may still be on its way
    base = len(stored_alert_ids(db))

    procs = [subprocess.Popen(["/bin/sh", "-c", "sleep 0.5", f"de-crash-marker-{i}"])
             for i in range(n)]
    for p in procs:
        p.wait()
    assert wait_for(lambda: len(stored_alert_ids(db)) >= base + n, timeout=20)
    before = len(r.bodies)
    os.kill(first, signal.SIGKILL)
    if mode == "slow":
        assert before < n, "the receiver had everything before the kill: nothing in flight"
    second = wait_for(lambda: (lambda p: p if p and p != first else None)(engine_pid(agent.pid)),
                      timeout=20)
    assert second, "the supervisor did not restart the engine"
    r.delay = 0.0
    if mode == "down":
        time.sleep(0.5)
        r.start()
    want = stored_alert_ids(db)
    assert len(want) >= base + n

    def all_arrived():
        got = {b["alert_id"] for b in r.bodies}
        return set(want) <= got
    assert wait_for(all_arrived, timeout=40, interval=0.2), \
        f"{len(set(b['alert_id'] for b in r.bodies))} of {len(want)} arrived"
    time.sleep(0.5)
    got = [b["alert_id"] for b in r.bodies if b["rule_id"] == "crash-marker"]
    first_seen = list(dict.fromkeys(got))
    assert first_seen == want, "not in the stored order"
    dups = len(got) - len(first_seen)
    assert dups <= 1, f"{dups} duplicates (the docs promise at most one per sink per kill)"
    h = subprocess.run([bins["daemoneye-cli"], "--data-dir", datadir, "--format", "json",
                        "health"], capture_output=True, text=True, timeout=10)
    assert h.returncode == 0, h.stderr
    hook = [s for s in json.loads(h.stdout)["alerts"]["sinks"] if s["type"] == "webhook"][0]
    if mode == "slow":
        # The kill left alerts in the memory queue: they came back from the store.
        assert hook["replayed"] >= 1, hook
    assert hook["dropped"] == 0, hook
    daemons.stop(agent)
