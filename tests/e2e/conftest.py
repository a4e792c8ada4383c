"""Fixtures for the black-box end-to-end suite.

The suite drives the real `chatli` binary over loopback, the way a client or an
operator would, and checks it against /work/shared/CONTRACT.md.  Nothing here
knows how the server is built inside: it only starts the process with an
environment, waits for /healthz and talks HTTP (or raw TCP) to it.

Names kept stable because the WebSocket tests reuse them:
  server         session-scoped shared instance (RATE_LIMIT_MAX=0, cheap Argon2)
  start_server   function-scoped factory: start_server(**env) -> ServerProcess
  register, api  helpers (re-exported from helpers.py)

Environment:
  CHATLI_BIN        path to the binary (default <repo>/build/chatli)
  CHATLI_E2E_STORE  "sqlite" or "mongo" (default: "mongo" when MONGODB_URI is
                    set); MONGODB_URI and MONGODB_DB from os.environ are passed
                    to every server (without MONGODB_DB each server gets its own
                    chatli_e2e_<random> database); with "mongo", tests marked
                    sqlite_only are skipped.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import requests

import openapi_check
from helpers import api, register  # noqa: F401  (re-exported for test modules)

REPO_ROOT = Path(__file__).resolve().parents[2]
CHATLI_BIN = os.path.abspath(os.environ.get("CHATLI_BIN", str(REPO_ROOT / "build" / "chatli")))
# A MONGODB_URI in our environment means the servers run on MongoDB even
# without CHATLI_E2E_STORE=mongo, so sqlite_only tests are skipped then too.
STORE = os.environ.get("CHATLI_E2E_STORE",
                       "mongo" if os.environ.get("MONGODB_URI") else "sqlite").lower()

# Servers started during the current test (plus the session one), so a failing
# test can show their log tails.
_LIVE_SERVERS = []
_KEPT = []   # temp dirs kept for a look after a failed run

DEFAULT_ENV = {
    "HOST": "127.0.0.1",
    "RATE_LIMIT_MAX": "0",
    "PWHASH_OPSLIMIT": "1",       # crypto_pwhash_argon2id_OPSLIMIT_MIN
    "PWHASH_MEMLIMIT": "8192",    # crypto_pwhash_argon2id_MEMLIMIT_MIN (bytes)
    "LOG_LEVEL": "warn",
    "SHUTDOWN_GRACE_S": "5",
}

STARTUP_TIMEOUT_S = 15.0


def free_port():
    """A loopback port that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _store_env():
    """MONGODB_* passed through from our environment, if any."""
    env = {}
    for k in ("MONGODB_URI", "MONGODB_DB"):
        if k in os.environ:
            env[k] = os.environ[k]
    if "MONGODB_URI" in env and "MONGODB_DB" not in env:
        # One database per test session so runs do not see each other's data.
        env["MONGODB_DB"] = "chatli_e2e_" + uuid.uuid4().hex[:12]
    return env


def _tail(path, max_bytes=4000):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            return f.read().decode("utf-8", "replace")
    except OSError as e:
        return "<unreadable: %s>" % e


class ServerProcess:
    """One chatli process with its own DATA_DIR, port and log files."""

    def __init__(self, workdir, env_overrides=None, name="chatli"):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.data_dir = str(self.workdir / "data")
        self.port = None
        self.proc = None
        self.env = {}
        self.stdout_path = None
        self.stderr_path = None
        self._runs = 0
        self._overrides = dict(env_overrides or {})

    # -- addresses -------------------------------------------------------
    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def ws_url(self):
        return "ws://127.0.0.1:%d" % self.port

    # -- life cycle ------------------------------------------------------
    def build_env(self, overrides=None):
        env = {k: v for k, v in os.environ.items()
               if k not in ("MONGODB_URI", "MONGODB_DB", "REDIS_URL",
                            "CLOUDINARY_URL", "PORT", "HOST", "DATA_DIR")}
        env.update(DEFAULT_ENV)
        env.update(_store_env())
        env["DATA_DIR"] = self.data_dir
        env.update(overrides or {})
        env.update(self._overrides)       # a test's explicit settings win (even PORT)
        env = {k: str(v) for k, v in env.items() if v is not None}
        return env

    def start(self, wait=True, new_port=True, **overrides):
        """Starts the process (again).  Keeps DATA_DIR and the store env, so a
        second start() after stop()/kill() sees the same data."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        if overrides:
            self._overrides.update(overrides)
        if new_port or self.port is None:
            try:
                self.port = int(self._overrides["PORT"])
            except (KeyError, ValueError):
                self.port = free_port()   # a bad PORT override still goes into env below
        keep_store = {k: self.env[k] for k in ("MONGODB_DB",) if k in self.env}
        self.env = self.build_env(dict(keep_store, PORT=str(self.port)))
        self._runs += 1
        self.stdout_path = str(self.workdir / ("stdout.%d.log" % self._runs))
        self.stderr_path = str(self.workdir / ("stderr.%d.log" % self._runs))
        os.makedirs(self.data_dir, exist_ok=True)
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen([CHATLI_BIN], env=self.env, stdout=out,
                                         stderr=err, stdin=subprocess.DEVNULL,
                                         cwd=str(self.workdir),
                                         preexec_fn=getattr(self, "preexec_fn", None))
        if wait:
            self.wait_healthy()
        return self

    def wait_healthy(self, timeout=STARTUP_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("chatli exited with %s during start-up\n%s"
                                   % (self.proc.returncode, self.logs()))
            try:
                r = requests.get(self.url + "/healthz", timeout=1)
                if r.status_code == 200:
                    return
                last = "status %d" % r.status_code
            except requests.RequestException as e:
                last = repr(e)
            time.sleep(0.05)
        raise RuntimeError("chatli not healthy after %.0fs (%s)\n%s"
                           % (timeout, last, self.logs()))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def stop(self, timeout=15.0):
        """SIGTERM, wait (bounded), then SIGKILL.  Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        return self.proc.returncode

    def stdout_text(self):
        with open(self.stdout_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stderr_text(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def logs(self):
        return ("--- %s stdout (tail) ---\n%s\n--- %s stderr (tail) ---\n%s"
                % (self.name, _tail(self.stdout_path), self.name, _tail(self.stderr_path)))


# ---------------------------------------------------------------------------
# markers, per-test time bound, log tails on failure

def pytest_configure(config):
    config.addinivalue_line("markers", "sqlite_only: needs the embedded SQLite store (files in DATA_DIR)")
    config.addinivalue_line("markers", "own_server: starts its own chatli process")
    config.addinivalue_line("markers", "slow: takes more than a second or two")
    config.addinivalue_line("markers", "time_limit(seconds): per-test wall-clock bound (default 60)")


def pytest_collection_modifyitems(config, items):
    if STORE != "sqlite":
        skip = pytest.mark.skip(reason="sqlite_only test, CHATLI_E2E_STORE=%s" % STORE)
        for item in items:
            if "sqlite_only" in item.keywords:
                item.add_marker(skip)


class _TestTimeout(Exception):
    pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """Bounds every test in wall-clock time (there is no pytest-timeout here)."""
    m = item.get_closest_marker("time_limit")
    limit = int(m.args[0]) if m else 60

    def on_alarm(signum, frame):
        raise _TestTimeout("test exceeded its %ds bound" % limit)

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(limit)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def pytest_sessionstart(session):
    openapi_check.install()


def pytest_runtest_logstart(nodeid, location):
    openapi_check.take()   # late answers to an earlier test's threads are not this test's


def _openapi_verdict(rep, when):
    """Fails a passing phase whose responses docs/openapi.yaml does not
    describe (openapi_check.py); on a phase that failed anyway they go into a
    report section.  Setup's responses are judged with the call's."""
    if when == "setup" and not rep.failed:
        return
    found = openapi_check.take()
    if not found:
        return
    text = ("%d response(s) that docs/openapi.yaml does not describe:\n%s"
            % (len(found), "\n".join(found)))
    if rep.passed:
        rep.outcome = "failed"
        rep.longrepr = text
    else:
        rep.sections.append(("openapi", text))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    _openapi_verdict(rep, call.when)
    if rep.failed and call.when in ("setup", "call"):
        for srv in list(_LIVE_SERVERS):
            if srv.stdout_path:
                state = "alive" if srv.alive() else "exited %s" % srv.proc.returncode
                rep.sections.append(("%s logs (%s, port %s)" % (srv.name, state, srv.port),
                                     srv.logs()))


def pytest_terminal_summary(terminalreporter):
    for d in _KEPT:
        terminalreporter.write_line("chatli e2e: server logs and data kept in %s" % d)


# ---------------------------------------------------------------------------
# fixtures

def _check_binary():
    if not os.path.isfile(CHATLI_BIN) or not os.access(CHATLI_BIN, os.X_OK):
        pytest.exit("chatli binary not found at %s (set CHATLI_BIN)" % CHATLI_BIN, returncode=4)


SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "ThreadSanitizer", "Segmentation fault")


def sanitizer_report(srv):
    """The sanitizer/crash text in a server's stderr, or None."""
    try:
        err = srv.stderr_text()
    except OSError:
        return None
    for m in SANITIZER_MARKERS:
        if m in err:
            i = err.index(m)
            return err[max(0, i - 200):i + 3000]
    return None


@pytest.fixture(scope="session")
def session_tmp(request):
    d = tempfile.mkdtemp(prefix="chatli-e2e-")
    yield Path(d)
    # keep the logs and data of a failed run for a look; CHATLI_E2E_KEEP=1 always keeps
    if request.session.testsfailed == 0 and not os.environ.get("CHATLI_E2E_KEEP"):
        shutil.rmtree(d, ignore_errors=True)
    else:
        _KEPT.append(d)


@pytest.fixture(scope="session")
def server(session_tmp):
    """The shared instance.  Tests must create their own users (unique names)
    and never assume an empty database."""
    _check_binary()
    srv = ServerProcess(session_tmp / "session", name="session-server")
    srv.start()
    _LIVE_SERVERS.append(srv)
    yield srv
    _LIVE_SERVERS.remove(srv)
    code = srv.stop()
    report = sanitizer_report(srv)
    assert report is None, "session server sanitizer report:\n" + report
    assert code == 0, "session server exited %s on SIGTERM\n%s" % (code, srv.logs())


@pytest.fixture
def start_server(session_tmp):
    """Factory for tests that need their own instance.  Every process started
    through it is stopped (SIGTERM, then SIGKILL) when the test ends."""
    _check_binary()
    started = []

    def factory(wait=True, preexec_fn=None, **env):
        srv = ServerProcess(session_tmp / ("own-" + uuid.uuid4().hex[:8]), env,
                            name="own-server")
        srv.preexec_fn = preexec_fn       # e.g. a small RLIMIT_NOFILE (test_admission.py)
        started.append(srv)
        _LIVE_SERVERS.append(srv)
        srv.start(wait=wait)
        return srv

    yield factory
    reports = []
    for srv in started:
        try:
            srv.stop(timeout=10)
        finally:
            _LIVE_SERVERS.remove(srv)
        report = sanitizer_report(srv)
        if report:
            reports.append(report)
    assert not reports, "sanitizer report from an own server:\n" + "\n".join(reports)
