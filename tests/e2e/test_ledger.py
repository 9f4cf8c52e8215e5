"""`daemoneye-cli ledger ...` end to end, on ledgers written by tests/tools/ledgertool
(the same ledger_append the agent calls): verify names the first bad entry for
every kind of tampering, proofs check with an independent RFC 6962 verifier and
`openssl pkeyutl`, export and show print what is stored.
"""
import csv
import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess

import pytest

from conftest import BUILD, binary, have, wait_for

MAGIC = 8
CKPT_LEN = 144


def ledgertool():
    path = BUILD / "tests" / "unit" / "ledgertool"
    if not path.exists():
        pytest.fail(f"{path} is not built: run `make build` first")
    return path


def cli(datadir, *args, fmt="table"):
    return subprocess.run([str(binary("daemoneye-cli")), "--data-dir", str(datadir),
                           "--format", fmt, "ledger", *args],
                          capture_output=True, text=True, timeout=60)


def fill(datadir, n, every=10, crash=False):
    subprocess.run([str(ledgertool()), str(datadir / "ledger"), "crash" if crash else "fill",
                    str(n), str(every)], check=True, capture_output=True, timeout=60)


def records(path):
    """(offset, length) of every record of entries.log."""
    data = path.read_bytes()
    out, off = [], MAGIC
    while off + 4 <= len(data):
        n = struct.unpack(">I", data[off:off + 4])[0] + 4
        out.append((off, n))
        off += n
    return out


def verify_fails_at(datadir, seq):
    r = cli(datadir, "verify", fmt="json")
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"FAILED at entry {seq}:" in r.stderr, r.stderr
    assert json.loads(r.stdout)["first_bad_seq"] == seq
    return r


def test_intact_ledger_verifies(datadir):
    fill(datadir, 50)
    r = cli(datadir, "verify", fmt="json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["ok"] is True
    assert doc["entries"] == 51          # key.created + 50
    assert doc["checkpoints"] == 6       # 10, 20, 30, 40, 50 and 51 at close
    assert doc["unsigned_tail"] == 0
    table = cli(datadir, "verify")
    assert table.returncode == 0 and "ok: true" in table.stdout


@pytest.mark.parametrize("victim,where", [(0, 5), (17, 0), (17, 3), (17, 30), (33, -1), (50, -40)])
def test_changed_byte_is_named(datadir, victim, where):
    fill(datadir, 50)
    path = datadir / "ledger" / "entries.log"
    off, n = records(path)[victim]
    data = bytearray(path.read_bytes())
    data[off + (where % n)] ^= 0x04
    path.write_bytes(bytes(data))
    verify_fails_at(datadir, victim)


def test_deleted_entry_is_named(datadir):
    fill(datadir, 30)
    path = datadir / "ledger" / "entries.log"
    off, n = records(path)[12]
    data = path.read_bytes()
    path.write_bytes(data[:off] + data[off + n:])
    r = verify_fails_at(datadir, 12)
    assert "deleted or reordered" in r.stderr


def test_reordered_entries_are_named(datadir):
    fill(datadir, 30)
    path = datadir / "ledger" / "entries.log"
    (o1, n1), (o2, n2) = records(path)[20:22]
    data = path.read_bytes()
    path.write_bytes(data[:o1] + data[o2:o2 + n2] + data[o1:o1 + n1] + data[o2 + n2:])
    verify_fails_at(datadir, 20)


def test_truncation_past_last_checkpoint_is_named(datadir):
    # A crash leaves entries 41..44 unsigned; cutting back past the last
    # checkpoint (size 40) removes signed entries, and verify says which.
    fill(datadir, 44, every=10, crash=True)
    ok = cli(datadir, "verify", fmt="json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["unsigned_tail"] == 5
    path = datadir / "ledger" / "entries.log"
    recs = records(path)
    with open(path, "r+b") as f:
        f.truncate(recs[37][0])
    r = verify_fails_at(datadir, 37)
    assert "truncated" in r.stderr


def test_torn_tail_reported_then_recovered(datadir):
    fill(datadir, 20, crash=True)
    path = datadir / "ledger" / "entries.log"
    data = path.read_bytes()
    with open(path, "ab") as f:
        f.write(data[MAGIC:MAGIC + 50])     # half a record, as a crash mid-write leaves
    r = verify_fails_at(datadir, 21)
    assert "torn" in r.stderr
    # The next writer keeps the bytes aside, cuts the tail and records it.
    subprocess.run([str(ledgertool()), str(datadir / "ledger"), "append", "agent",
                    "agent.start", "{}"], check=True, capture_output=True, timeout=30)
    assert list((datadir / "ledger").glob("entries.log.torn-*"))
    r = cli(datadir, "verify")
    assert r.returncode == 0, r.stderr
    show = json.loads(cli(datadir, "show", "--last", "2", fmt="json").stdout)
    assert [e["action"] for e in show] == ["ledger.torn_tail", "agent.start"]


def test_checkpoint_signature_and_offline_key(datadir, tmp_path):
    fill(datadir, 25)
    pub = tmp_path / "trusted.pub"
    r = cli(datadir, "pubkey")
    assert r.returncode == 0 and "BEGIN PUBLIC KEY" in r.stdout
    pub.write_text(r.stdout)
    assert cli(datadir, "verify", "--pubkey", str(pub)).returncode == 0

    other = tmp_path / "other"
    other.mkdir()
    fill(other, 1)
    r = cli(datadir, "verify", "--pubkey", str(other / "ledger" / "ledger.pub"))
    assert r.returncode == 1 and "FAILED at entry 0" in r.stderr

    ck = datadir / "ledger" / "checkpoints.log"
    data = bytearray(ck.read_bytes())
    data[MAGIC + CKPT_LEN + 90] ^= 1            # signature of the second checkpoint (size 20)
    ck.write_bytes(bytes(data))
    r = cli(datadir, "verify", "--pubkey", str(pub), fmt="json")
    assert r.returncode == 1
    assert json.loads(r.stdout)["first_bad_seq"] == 10
    assert "signature" in r.stderr


def rfc9162_root_from_path(index, size, leaf, path):
    """RFC 9162 §2.1.3.2, written independently of the C code."""
    node = lambda a, b: hashlib.sha256(b"\x01" + a + b).digest()
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def test_inclusion_proof_checks_independently(datadir, tmp_path):
    fill(datadir, 70, every=16)
    r = cli(datadir, "prove", "43")
    assert r.returncode == 0, r.stderr
    proof = json.loads(r.stdout)
    assert proof["leaf_index"] == 43 and proof["tree_size"] == 71
    entry = bytes.fromhex(proof["entry"]["entry_bytes"])
    leaf = hashlib.sha256(b"\x00" + entry).digest()
    assert leaf.hex() == proof["leaf_hash"]
    assert hashlib.sha256(b"DaemonEye-ledger-entry-v1\x00" + entry[:-32]).digest() == entry[-32:]
    root = rfc9162_root_from_path(43, 71, leaf, [bytes.fromhex(h) for h in proof["audit_path"]])
    assert root is not None and root.hex() == proof["root_hash"]
    cp = proof["checkpoint"]
    assert cp["root_hash"] == proof["root_hash"] and cp["tree_size"] == 71

    if have("openssl"):
        msg = (b"DaemonEye-ledger-checkpoint-v1\x00" +
               struct.pack(">QQ", cp["tree_size"], cp["timestamp_ms"]) + bytes.fromhex(cp["root_hash"]))
        (tmp_path / "msg").write_bytes(msg)
        (tmp_path / "sig").write_bytes(bytes.fromhex(cp["signature"]))
        v = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey",
                            str(datadir / "ledger" / "ledger.pub"), "-rawin", "-in", str(tmp_path / "msg"),
                            "-sigfile", str(tmp_path / "sig")], capture_output=True, text=True)
        assert v.returncode == 0, v.stdout + v.stderr

    pf = tmp_path / "proof.json"
    pf.write_text(r.stdout)
    ok = cli(datadir, "verify-proof", str(pf), fmt="json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["ok"] is True
    proof["audit_path"][2] = "00" * 32
    pf.write_text(json.dumps(proof))
    bad = cli(datadir, "verify-proof", str(pf))
    assert bad.returncode == 1 and "does not verify" in bad.stderr


def test_prove_uncovered_and_usage(datadir):
    fill(datadir, 12, every=10, crash=True)       # checkpoint at 10 only
    assert cli(datadir, "prove", "5").returncode == 0
    r = cli(datadir, "prove", "11")
    assert r.returncode == 1 and "not covered" in r.stderr
    assert cli(datadir, "prove", "x").returncode == 2
    assert cli(datadir, "frobnicate").returncode == 2
    assert cli(datadir, "show", "--last", "0").returncode == 2


def test_export_and_show(datadir):
    fill(datadir, 15, every=5)
    r = cli(datadir, "export")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    entries = [x for x in lines if x["type"] == "entry"]
    cps = [x for x in lines if x["type"] == "checkpoint"]
    assert [e["seq"] for e in entries] == list(range(16))
    assert entries[0]["action"] == "key.created"
    assert [c["tree_size"] for c in cps] == [5, 10, 15, 16]
    for e in entries:
        assert hashlib.sha256(e["payload"].encode()).hexdigest() == e["payload_hash"]
    for a, b in zip(entries, entries[1:]):
        assert b["prev_hash"] == a["entry_hash"]
    show = json.loads(cli(datadir, "show", "--last", "3", fmt="json").stdout)
    assert [e["seq"] for e in show] == [13, 14, 15]
    table = cli(datadir, "show", "--last", "2")
    assert table.returncode == 0 and "alert.raised" in table.stdout
    rows = list(csv.DictReader(cli(datadir, "show", "--last", "1", fmt="csv").stdout.splitlines()))
    assert len(rows) == 1 and rows[0]["payload"] == entries[-1]["payload"]


def test_copied_ledger_verifies_offline(datadir, tmp_path):
    fill(datadir, 40)
    copy = tmp_path / "copy"
    shutil.copytree(datadir / "ledger", copy / "ledger")
    (copy / "ledger" / "ledger.key").unlink()     # a verifier never has the private key
    r = cli(copy, "verify", "--pubkey", str(datadir / "ledger" / "ledger.pub"))
    assert r.returncode == 0, r.stderr


def test_missing_ledger_is_an_error(tmp_path):
    r = cli(tmp_path, "verify")
    assert r.returncode == 1 and "no ledger" in r.stderr


def _start_agent(daemons, datadir, tmp_path, registrations=1):
    rules = tmp_path / "rules"
    rules.mkdir()
    rules.chmod(0o755)
    cfg = tmp_path / "agent.yaml"
    cfg.write_text("agent:\n  data_dir: %s\n  startup_timeout_s: 30\n"
                   "alerting:\n  sinks:\n    - { type: file, path: %s, format: json }\n"
                   % (datadir, tmp_path / "alerts.jsonl"))
    env = dict(os.environ, DAEMONEYE_PROCMOND_BINARY=str(binary("procmond")))
    log = open(tmp_path / "agent.log", "ab")
    p = daemons.start([binary("daemoneye-agent"), "--config", cfg, "--rules-dir", rules],
                      env=env, stdout=subprocess.DEVNULL, stderr=log)
    shown = lambda: (cli(datadir, "show", "--last", "100", fmt="json").stdout or "[]")
    ok = wait_for(lambda: shown().count('"collector.register"') >= registrations, 30)
    assert ok, (tmp_path / "agent.log").read_text(errors="replace")[-3000:]
    return p


@pytest.mark.root
def test_agent_ledger_records_and_verifies(daemons, datadir, tmp_path):
    """The real agent writes the ledger as its own user; a clean stop signs
    everything; the CLI verifies it offline with a copy of the public key."""
    p = _start_agent(daemons, datadir, tmp_path)
    key = datadir / "ledger" / "ledger.key"
    st = key.stat()
    assert st.st_mode & 0o777 == 0o600
    assert st.st_uid != 0 or pwd_missing("daemoneye") and pwd_missing("nobody")
    assert daemons.stop(p) == 0
    pub = tmp_path / "trusted.pub"
    pub.write_text(cli(datadir, "pubkey").stdout)
    r = cli(datadir, "verify", "--pubkey", str(pub), fmt="json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["unsigned_tail"] == 0 and doc["checkpoints"] >= 1
    actions = [e["action"] for e in json.loads(cli(datadir, "show", "--last", "1000", fmt="json").stdout)]
    assert actions[0] == "key.created"
    for a in ("agent.start", "collector.register", "agent.stop"):
        assert a in actions, actions


def pwd_missing(name):
    import pwd
    try:
        pwd.getpwnam(name)
        return False
    except KeyError:
        return True


@pytest.mark.root
def test_agent_kill9_then_restart_keeps_one_chain(daemons, datadir, tmp_path):
    """kill -9 of the whole agent loses nothing already appended: the chain
    verifies (the tail after the last checkpoint is chain-checked), and the
    restarted agent continues the same chain and signs it at its clean stop."""
    p = _start_agent(daemons, datadir, tmp_path)
    daemons.stop(p, sig=signal.SIGKILL)
    r = cli(datadir, "verify", fmt="json")
    assert r.returncode == 0, r.stderr
    before = json.loads(r.stdout)["entries"]
    (tmp_path / "rules").rename(tmp_path / "rules.old")
    p = _start_agent(daemons, datadir, tmp_path, registrations=2)
    assert daemons.stop(p) == 0
    r = cli(datadir, "verify", fmt="json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["entries"] > before and doc["unsigned_tail"] == 0
    shown = cli(datadir, "show", "--last", "1000", fmt="json").stdout
    actions = [e["action"] for e in json.loads(shown)]
    assert actions.count("key.created") == 1 and actions.count("agent.start") == 2


def test_kept_checkpoint_catches_consistent_cut(datadir, tmp_path):
    """Cutting both files back to an earlier checkpoint leaves a ledger that
    agrees with itself; a checkpoint the investigator kept elsewhere (a line
    of `ledger export`) still catches it and names the first missing entry."""
    fill(datadir, 30, every=10)
    kept = tmp_path / "kept.json"
    kept.write_text(cli(datadir, "export").stdout.splitlines()[-1])
    assert cli(datadir, "verify", "--checkpoint", str(kept)).returncode == 0
    path = datadir / "ledger" / "entries.log"
    with open(path, "r+b") as f:
        f.truncate(records(path)[20][0])
    with open(datadir / "ledger" / "checkpoints.log", "r+b") as f:
        f.truncate(MAGIC + 2 * CKPT_LEN)
    assert cli(datadir, "verify").returncode == 0
    r = cli(datadir, "verify", "--checkpoint", str(kept), fmt="json")
    assert r.returncode == 1 and "FAILED at entry 20" in r.stderr, r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert cli(datadir, "verify", "--checkpoint", str(bad)).returncode == 2


def rfc9162_consistency(size1, size2, root1, root2, path):
    """RFC 9162 §2.1.4.2, written independently of the C code."""
    node = lambda a, b: hashlib.sha256(b"\x01" + a + b).digest()
    if size1 == size2:
        return not path and root1 == root2
    if size1 == 0 or size1 > size2 or not path:
        return False
    if size1 & (size1 - 1) == 0:
        path = [root1] + path
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node(c, fr), node(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == root1 and sr == root2 and sn == 0


def test_consistency_proof_checks_independently(datadir, tmp_path):
    """A checkpoint kept from an older ledger (size 20) is proven to be a
    prefix of today's signed head without the entries."""
    fill(datadir, 19, every=10)                    # 20 entries, heads at 10 and 20
    kept = json.loads(cli(datadir, "export").stdout.splitlines()[-1])
    assert kept["tree_size"] == 20
    fill(datadir, 47, every=10)                    # same ledger, grown to 67
    r = cli(datadir, "consistency", "20")
    assert r.returncode == 0, r.stderr
    proof = json.loads(r.stdout)
    assert proof["first_size"] == 20 and proof["second_size"] == 67
    assert proof["first_root"] == kept["root_hash"]
    assert rfc9162_consistency(20, 67, bytes.fromhex(proof["first_root"]),
                               bytes.fromhex(proof["second_root"]),
                               [bytes.fromhex(h) for h in proof["consistency_path"]])
    pf = tmp_path / "cons.json"
    pf.write_text(r.stdout)
    assert cli(datadir, "verify-proof", str(pf)).returncode == 0
    proof["consistency_path"][0] = "11" * 32
    pf.write_text(json.dumps(proof))
    bad = cli(datadir, "verify-proof", str(pf))
    assert bad.returncode == 1 and "does not verify" in bad.stderr
    assert cli(datadir, "consistency", "68").returncode == 1
