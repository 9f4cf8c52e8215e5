"""Hostile rules (issue 5): each is refused by `daemoneye-cli rules validate`
with exit 2 and a reason naming the file, and an agent whose rule directory
holds all of them plus one good rule keeps serving and alerts with the good one.
"""
import json
import subprocess
import time
import uuid

import pytest

from conftest import BUILD, wait_for

# (file stem, sql, words the reason must contain)
HOSTILE = [
    ("attach", "ATTACH DATABASE '/tmp/evil.db' AS evil", "ATTACH"),
    ("pragma", "PRAGMA writable_schema = ON", "PRAGMA"),
    ("insert", "INSERT INTO live_processes (pid) VALUES (1)", "INSERT"),
    ("update", "UPDATE process_events SET name = 'x'", "UPDATE"),
    ("update-view", "UPDATE live_processes SET name = 'x'", "view"),
    ("delete", "DELETE FROM process_events", "DELETE"),
    ("drop", "DROP TABLE process_events", "not allowed"),
    ("load-extension", "SELECT load_extension('/tmp/evil.so') AS pid", "load_extension"),
    ("endless-cte", "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
     "SELECT x AS pid FROM c WHERE x < 0", "time limit"),
    ("row-flood", "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
     "SELECT x AS pid FROM c", "more than 10000 rows"),
    ("randomblob", "SELECT pid, randomblob(2000000000) AS b FROM processes", "randomblob"),
    ("zeroblob", "SELECT pid, zeroblob(2000000000) AS b FROM processes", "zeroblob"),
    ("regexp-backtrack", "SELECT pid FROM processes WHERE command_line REGEXP '^(a+)+$'",
     "regexp"),
    ("no-pid", "SELECT name, executable_path FROM processes", "pid"),
    ("syntax", "SELECT pid FROM processes WHERE name = = 'x'", "syntax error"),
    ("two-statements", "SELECT pid FROM processes; DELETE FROM alerts", "one statement"),
]


def rule_yaml(rule_id, sql):
    return (f"id: {rule_id}\nname: {rule_id}\ndescription: hostile test rule\n"
            f"severity: high\ncategory: test\nsql: |\n  {sql}\n")


def cli():
    path = BUILD / "src" / "cli" / "daemoneye-cli"
    if not path.exists():
        pytest.fail(f"{path} is not built: run `make build` first")
    return path


@pytest.mark.parametrize("stem,sql,reason", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_validate_refuses(tmp_path, stem, sql, reason):
    f = tmp_path / f"{stem}.yaml"
    f.write_text(rule_yaml(f"hostile-{stem}", sql))
    t0 = time.monotonic()
    p = subprocess.run([cli(), "--data-dir", tmp_path, "rules", "validate", f],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert f"{stem}.yaml:" in p.stderr, p.stderr
    assert reason in p.stderr, p.stderr
    # The time limit (100 ms by default) bounds even the endless ones.
    assert time.monotonic() - t0 < 10


def test_validate_accepts_good(tmp_path):
    f = tmp_path / "good.yaml"
    f.write_text(rule_yaml("good-rule", "SELECT pid, name FROM processes "
                           "WHERE command_line REGEXP '(curl|wget)\\s.*\\|\\s*(ba)?sh'"))
    p = subprocess.run([cli(), "--data-dir", tmp_path, "rules", "validate", f],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, (p.stdout, p.stderr)


@pytest.mark.root
def test_agent_keeps_serving_with_hostile_rules(daemons, datadir, tmp_path):
    import test_pipeline as tp

    rules = tmp_path / "rules"
    rules.mkdir()
    rules.chmod(0o755)
    for stem, sql, _ in HOSTILE:
        (rules / f"{stem}.yaml").write_text(rule_yaml(f"hostile-{stem}", sql))
    marker = "hostile-e2e-" + uuid.uuid4().hex[:8]
    (rules / "zz-good.yaml").write_text(rule_yaml(
        "good-marker", f"SELECT pid, command_line FROM processes "
        f"WHERE command_line LIKE '%{marker}%'"))
    for f in rules.iterdir():
        f.chmod(0o644)
    agent = tp.Agent(daemons, datadir, rules)
    # The engine runs unprivileged: its alert file lives in the data dir.
    alerts = datadir / "alerts.jsonl"
    agent.cfg.write_text(
        "agent:\n  data_dir: %s\n  startup_timeout_s: 30\n"
        "alerting:\n  sinks:\n    - { type: file, path: %s, format: json }\n"
        % (datadir, alerts))
    agent.start()
    # Every hostile rule was rejected with its reason, in the log.
    log = agent.log.read_text(errors="replace")
    for stem, _, _ in HOSTILE:
        assert f"{stem}.yaml" in log, agent.tail()
    # The engine still serves, and the good rule fires on a real process.
    subprocess.run(["sh", "-c", "sleep 0.5", marker], check=True, timeout=10)

    def fired():
        try:
            lines = alerts.read_text().splitlines()
        except OSError:
            return None
        return [json.loads(x) for x in lines if marker in x]

    got = wait_for(fired, 20, 0.2)
    assert got, agent.tail()
    assert got[0]["rule_id"] == "good-marker"
    status, body = tp.control(agent.sock)
    assert status == 0
    assert agent.proc.poll() is None
