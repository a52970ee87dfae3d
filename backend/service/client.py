"""A small blocking client of `gid serve` for scripts, tests and benchmarks (the add-on has its own threaded one).

    with Client("tcp://127.0.0.1:5555") as c:
        c.request("ping")
        out = c.request("render", {...}, on_progress=lambda stage, done: print(stage, done))

`request` sends one request and waits for its result, calling `on_progress(stage, done)` for progress messages;
an error reply raises ClientError(code, message). `submit` + `wait` split that in two, so a script can cancel a
job (`cancel(id)`) from another request on the same client.

With a token the client presents it twice: in the connection handshake (ZMTP PLAIN; a server with a token admits
no one else) and in every request. A server that refuses the handshake sends nothing back, so the client watches
its socket's handshake events and fails a request at once with `unauthorized` and a message saying why.
"""
from __future__ import annotations

import collections
import time
from typing import Callable

import zmq

from shared import protocol
from shared.protocol import Limits

TIMEOUT = "timeout"          # client-side codes, beside shared.protocol.ERROR_CODES
BAD_REPLY = "bad_reply"


class ClientError(Exception):
    """An error reply from the server (code from shared.protocol.ERROR_CODES) or a client-side failure."""

    def __init__(self, code: str, message: str, request_id: str | None = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.request_id = request_id


class Client:
    def __init__(self, endpoint: str = "tcp://127.0.0.1:5555", token: str | None = None,
                 timeout: float | None = 60.0, limits: Limits = protocol.DEFAULT_LIMITS,
                 context: zmq.Context | None = None):
        """timeout: seconds to wait for any message of a request (progress resets it); None = forever.
        token: the server's `--token` (presented in the handshake and in each request); None for a server
        without one."""
        self.endpoint = endpoint
        self.token = token
        self.timeout = timeout
        self.limits = limits
        self._own_context = context is None
        self._ctx = context or zmq.Context()
        self.socket = self._ctx.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self._monitor = protocol.prepare_client_socket(self.socket, token)
        # how the last connection handshake ended: None (none yet), "" (admitted) or why the server refused it
        self.handshake: str | None = None
        self.socket.connect(endpoint)
        self._stash: dict[str, collections.deque] = {}   # replies to other pending ids, read while waiting

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.socket.disable_monitor()
        self._monitor.close(linger=0)
        self.socket.close(linger=0)
        if self._own_context:
            self._ctx.term()

    def submit(self, op: str, args: dict | None = None, request_id: str | None = None) -> str:
        msg = protocol.request(op, args, request_id=request_id, token=self.token)
        self.socket.send_multipart(protocol.encode(msg), copy=False)
        self._stash.setdefault(msg["id"], collections.deque())
        return msg["id"]

    def wait(self, request_id: str, on_progress: Callable[[str, float], None] | None = None,
             timeout: float | None = ...) -> dict:
        """Wait for the result of `request_id`; progress goes to on_progress. Raises ClientError."""
        timeout = self.timeout if timeout is ... else timeout
        try:
            while True:
                reply = self.next_message(request_id, timeout)
                kind = reply["type"]
                if kind == "progress":
                    if on_progress is not None:
                        on_progress(reply["stage"], float(reply["done"]))
                elif kind == "result":
                    return reply["result"]
                else:
                    err = reply["error"]
                    raise ClientError(err["code"], err["message"], request_id)
        finally:
            stash = self._stash.get(request_id)
            if stash is not None and not stash:
                del self._stash[request_id]

    def request(self, op: str, args: dict | None = None, on_progress: Callable[[str, float], None] | None = None,
                timeout: float | None = ...) -> dict:
        return self.wait(self.submit(op, args), on_progress, timeout)

    def cancel(self, target: str, timeout: float | None = ...) -> bool:
        return bool(self.request("cancel", {"target": target}, timeout=timeout)["cancelled"])

    def ping(self, timeout: float | None = ...) -> dict:
        return self.request("ping", timeout=timeout)

    def next_message(self, request_id: str, timeout: float | None = None) -> dict:
        """The next reply message (progress, result or error dict) of `request_id`; raises ClientError on timeout."""
        stash = self._stash.setdefault(request_id, collections.deque())
        deadline = None if timeout is None else time.monotonic() + timeout
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        poller.register(self._monitor, zmq.POLLIN)
        while not stash:
            self._read_handshake_events()
            if self.handshake:
                raise ClientError(protocol.UNAUTHORIZED, self.handshake, request_id)
            wait_ms = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            events = dict(poller.poll(wait_ms))
            if not events:
                hint = (": is `gid serve` running, and is the token right?" if self.token and self.handshake is None
                        else "")
                raise ClientError(TIMEOUT, f"no answer from the backend at {self.endpoint} to {request_id} within "
                                           f"{timeout} s{hint}", request_id)
            if self.socket not in events:
                continue
            frames = self.socket.recv_multipart(copy=False)
            try:
                reply = protocol.parse_reply([f.buffer for f in frames], self.limits)
            except protocol.ProtocolError as exc:
                raise ClientError(BAD_REPLY, f"unreadable reply: {exc.message}", request_id) from None
            rid = reply.get("id")
            if rid is None and reply["type"] == "error":
                # The server could not read a request's id: give it to whoever is waiting.
                rid = request_id
            if rid in self._stash:
                self._stash[rid].append(reply)
            # replies to ids nobody waits for (e.g. after a timeout) are dropped
        return stash.popleft()

    def _read_handshake_events(self) -> None:
        while self._monitor.poll(0):
            outcome = protocol.handshake_outcome(self._monitor, self.endpoint, self.token)
            if outcome is not None:
                self.handshake = outcome


# ------------------------------------------------------------------------------------------------------------
# starting a local server (tests, benchmarks, demo scripts)

READY_PREFIX = "GID backend ready on "


def start_local_server(*serve_args: str, log_file: str | None = None, timeout: float = 120.0,
                       python: str | None = None, env: dict | None = None):
    """Start `gid serve --bind tcp://127.0.0.1:0 ...` (as `python -m backend.service.serve_cli`, which skips importing
    the other sub-commands) and wait for its ready line.

    Returns (subprocess.Popen, endpoint). The process's stderr is discarded (it also logs to `log_file`);
    stop it with `stop_local_server`.
    """
    import os
    import selectors
    import subprocess
    import sys
    from pathlib import Path

    args = list(serve_args)
    if "--bind" not in args:
        args = ["--bind", "tcp://127.0.0.1:0"] + args
    if log_file is not None:
        args += ["--log-file", str(log_file)]
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([python or sys.executable, "-m", "backend.service.serve_cli", *args], cwd=root,
                            env=dict(os.environ if env is None else env, PYTHONUNBUFFERED="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not sel.select(timeout=0.5):
                if proc.poll() is not None:
                    break
                continue
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith(READY_PREFIX):
                return proc, line[len(READY_PREFIX):].strip()
    finally:
        sel.close()
    stop_local_server(proc)
    raise RuntimeError(f"gid serve did not become ready (exit code {proc.returncode}); see its log {log_file}")


def stop_local_server(proc, timeout: float = 15.0) -> int:
    """SIGTERM, wait, SIGKILL if it hangs; returns the exit code."""
    import signal
    import subprocess

    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
    return proc.returncode
