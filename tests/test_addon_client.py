"""The add-on's threaded client and backend launcher against a real `gid serve` process (no bpy needed).

The server runs with --test-ops: `_test_sleep` gives a long job with progress and cancel points without any
model (transport only, as the server's own tests do).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from blender_addon.backend_process import (TOKEN_ENV, BackendProcess, free_tcp_address, port_open, serve_command,
                                           serve_env)
from blender_addon.client import DONE, FAILED, BackendClient, BackendError, Job, check_address, is_loopback

ROOT = Path(__file__).resolve().parents[1]


def start_server(tmp_path, token: str = ""):
    address = free_tcp_address()
    argv = serve_command(sys.executable, "", address,
                         extra=f"--test-ops --device cpu --log-file '{tmp_path / 'serve-rot.log'}'")
    proc = BackendProcess(argv, str(tmp_path / "serve.log"), cwd=str(ROOT), env=serve_env(token))
    proc.wait_ready(address, timeout=120)
    return address, proc


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    address, proc = start_server(tmp_path_factory.mktemp("serve"))
    yield address, proc
    proc.stop()


def test_serve_command():
    assert serve_command("/env/bin/python", "ignored", "tcp://127.0.0.1:1", "--device cuda") == [
        "/env/bin/python", "-m", "backend", "serve", "--device", "cuda", "--bind", "tcp://127.0.0.1:1"]
    assert serve_command("", "gid serve", "tcp://127.0.0.1:2") == ["gid", "serve", "--bind", "tcp://127.0.0.1:2"]
    with pytest.raises(ValueError, match="empty"):
        serve_command("", "  ", "tcp://127.0.0.1:2")
    # the token never goes on a command line (readable by every local user): only through the environment
    for extra in ("--token secret-token", "--device cpu --token=secret-token"):
        with pytest.raises(ValueError, match="Token field"):
            serve_command("/env/bin/python", "", "tcp://127.0.0.1:1", extra)
    from backend.service.serve_cli import ENV_TOKEN

    assert TOKEN_ENV == ENV_TOKEN
    assert serve_env("secret-token", {"PATH": "/bin"}) == {"PATH": "/bin", ENV_TOKEN: "secret-token"}
    assert serve_env("", {"PATH": "/bin", ENV_TOKEN: "inherited-one"}) == {"PATH": "/bin"}


def test_address_rules():
    assert is_loopback("tcp://127.0.0.1:5555") and is_loopback("tcp://localhost:1") and is_loopback("tcp://[::1]:9")
    assert not is_loopback("tcp://192.168.1.20:5555")
    check_address("tcp://127.0.0.1:5555", online_access=False)          # loopback is never gated
    check_address("tcp://10.0.0.5:5555", online_access=True)
    with pytest.raises(ValueError, match="Allow Online Access"):
        check_address("tcp://10.0.0.5:5555", online_access=False)
    for bad in ("http://127.0.0.1:5555", "tcp://127.0.0.1", "127.0.0.1:5555"):
        with pytest.raises(ValueError):
            check_address(bad, online_access=True)


def test_ping_progress_cancel(server):
    address, proc = server
    cl = BackendClient(address, idle_timeout=30)
    try:
        info = cl.call("ping", {}, timeout=30)
        assert info["protocol"] == 1 and "render" in info["ops"]
        seen = []
        job = cl.submit("_test_sleep", {"steps": 5, "delay": 0.02}, on_progress=lambda j: seen.append(j.done))
        cl.wait(job, timeout=30)
        assert job.state == DONE and job.result == {"steps": 5}
        assert len(seen) >= 3 and seen == sorted(seen)
        # a long job: poll() never blocks while it runs, and cancel ends it; the server keeps serving
        job = cl.submit("_test_sleep", {"steps": 1000, "delay": 0.05})
        worst = 0.0
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            t0 = time.perf_counter()
            cl.poll()
            worst = max(worst, time.perf_counter() - t0)
            time.sleep(0.01)
        assert worst < 0.05
        cl.cancel(job)
        assert job.state == "cancelled" and job.error.code == "cancelled"
        assert cl.call("ping", {}, timeout=30)["protocol"] == 1
        with pytest.raises(BackendError) as err:
            cl.call("no_such_op", {}, timeout=30)
        assert err.value.code == "unknown_op"
    finally:
        cl.close()


def test_backend_killed_fails_jobs_clearly(tmp_path):
    address, proc = start_server(tmp_path)
    cl = BackendClient(address, idle_timeout=60, liveness=proc.liveness)
    try:
        job = cl.submit("_test_sleep", {"steps": 1000, "delay": 0.05})
        time.sleep(0.3)
        proc.proc.kill()
        t0 = time.monotonic()
        cl.wait(job, timeout=30)
        assert job.state == FAILED and job.error.code == "backend_exited"
        assert "exited" in str(job.error) and proc.log_path in str(job.error)
        assert time.monotonic() - t0 < 5
    finally:
        cl.close()
        proc.stop()


def test_no_backend_times_out_without_blocking():
    address = free_tcp_address()
    assert not port_open(address)
    cl = BackendClient(address, idle_timeout=0.5)
    try:
        job = cl.submit("ping", {})
        t0 = time.monotonic()
        cl.wait(job, timeout=10)
        assert job.state == FAILED and job.error.code == "timeout"
        assert "is `gid serve` running?" in str(job.error)
        assert time.monotonic() - t0 < 3
    finally:
        cl.close()


def _ping(address: str, token: str, idle_timeout: float = 30) -> tuple[Job, float]:
    cl = BackendClient(address, token, idle_timeout=idle_timeout)
    try:
        t0 = time.monotonic()
        job = cl.wait(cl.submit("ping", {}), timeout=30)
        return job, time.monotonic() - t0
    finally:
        cl.close()


REFUSAL_SECONDS = 15   # "at once": well under _ping's 30 s idle timeout (a loaded 2-core CI machine took 8.7 s)


def test_token_is_checked_in_the_handshake_and_refusals_say_why(server, tmp_path):
    """A backend with a token refuses a connection without it (ZMTP PLAIN handshake): the job fails at once with
    `unauthorized` and what to check, not after the idle timeout."""
    secret = "addon-client-token"
    address, proc = start_server(tmp_path, token=secret)
    try:
        for token, phrase in (("", "requires a token"), ("wrong-token-123", "refused the connection")):
            job, seconds = _ping(address, token)
            assert job.state == FAILED and job.error.code == "unauthorized", job.error
            assert phrase in job.error.message and "is the token right?" in job.error.message
            assert address in job.error.message and seconds < REFUSAL_SECONDS
        job, _ = _ping(address, secret)
        assert job.state == DONE and job.result["protocol"] == 1
    finally:
        proc.stop()
    # a token for the module's server, which has none
    job, seconds = _ping(server[0], "some-token-123")
    assert job.state == FAILED and job.error.code == "unauthorized" and "takes no token" in job.error.message
    assert seconds < REFUSAL_SECONDS
    # nothing answers at all while a token is set: the timeout asks about the token too
    job, _ = _ping(free_tcp_address(), "some-token-123", idle_timeout=0.5)
    assert job.state == FAILED and job.error.code == "timeout"
    assert "no answer from the backend at" in job.error.message and "is the token right?" in job.error.message


def test_launcher_reports_a_failing_command(tmp_path):
    proc = BackendProcess([sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"],
                          str(tmp_path / "bad.log"))
    with pytest.raises(RuntimeError, match="exited with code 3") as err:
        proc.wait_ready(free_tcp_address(), timeout=20)
    assert "boom" in str(err.value)
    with pytest.raises(RuntimeError, match="could not start"):
        BackendProcess([str(tmp_path / "missing-python")], str(tmp_path / "x.log"))
