"""End-to-end fixtures: locate the built binaries, give each test a private
data directory, start daemons and always stop them, and mark root-only tests.
"""
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("DE_BUILD_DIR", TOP / "build"))


def binary(name):
    """Path of a built program (procmond, daemoneye-agent, daemoneye-cli)."""
    sub = {"procmond": "procmond", "daemoneye-agent": "agent", "daemoneye-cli": "cli"}[name]
    path = BUILD / "src" / sub / name
    if not path.exists():
        pytest.fail(f"{path} is not built: run `make build` first")
    return path


def pytest_configure(config):
    config.addinivalue_line("markers", "root: needs uid 0 (skipped otherwise)")


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root: run the suite as root to include it")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def bins():
    return {n: binary(n) for n in ("procmond", "daemoneye-agent", "daemoneye-cli")
            if (BUILD / "src").exists()}


@pytest.fixture
def datadir(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    # The daemons drop to an unprivileged user: it must reach and write here.
    # pytest makes its temporary tree 0700; open the path down to the test.
    p = tmp_path
    while p != p.parent and str(p).startswith(("/tmp/", "/var/tmp/")):
        os.chmod(p, 0o755)
        p = p.parent
    os.chmod(d, 0o777)
    return d


class Daemons:
    """Starts processes and guarantees they are stopped at teardown."""

    def __init__(self):
        self.procs = []

    def start(self, argv, **kw):
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        p = subprocess.Popen([str(a) for a in argv], start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=10):
        if p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        return p.returncode

    def stop_all(self):
        for p in reversed(self.procs):
            self.stop(p)


@pytest.fixture
def daemons():
    d = Daemons()
    yield d
    d.stop_all()


def wait_for(pred, timeout=10.0, interval=0.05):
    """Polls pred() until it returns a true value; returns it, or None on timeout."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    return None


def have(cmd):
    return shutil.which(cmd) is not None
