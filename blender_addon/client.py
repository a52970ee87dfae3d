"""Threaded ZeroMQ DEALER client for the `gid serve` backend. No bpy in this module.

All socket I/O happens on one worker thread (ZeroMQ sockets are not thread-safe and Blender must never block
on the network). Replies are decoded on that thread and put in a queue; `poll()`, called on Blender's main
thread (a `bpy.app.timers` callback in the UI, an explicit loop in scripts and tests: timers never fire in
background mode), drains the queue, updates the `Job` objects and runs their callbacks there, so callbacks may
touch bpy. A job that hears nothing for `idle_timeout` seconds, or whose backend process died (`liveness`),
fails with a clear message instead of hanging.

With a token the client presents it in the connection handshake (ZMTP PLAIN) as well as in every request; a
server that refuses the handshake sends nothing back, so the socket's handshake events are watched and the
jobs fail at once with `unauthorized` and why (wrong token, token missing, or a server that takes none).
"""
from __future__ import annotations

import ipaddress
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

from .vendor import protocol

PENDING, RUNNING, DONE, FAILED, CANCELLED = "pending", "running", "done", "failed", "cancelled"
FINISHED_STATES = (DONE, FAILED, CANCELLED)


class BackendError(RuntimeError):
    """A job failed: `code` is a protocol error code, or 'timeout' / 'backend_exited' / 'disconnected'."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{message} [{code}]")
        self.code = code
        self.message = message


def is_loopback(address: str) -> bool:
    """True for ipc://, inproc:// and tcp:// to 127.0.0.0/8, ::1 or localhost."""
    parts = urlsplit(address)
    if parts.scheme in ("ipc", "inproc"):
        return True
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_address(address: str, online_access: bool) -> None:
    """Raise ValueError for a malformed address, or a non-loopback one while online access is off."""
    parts = urlsplit(address)
    if parts.scheme not in ("tcp", "ipc"):
        raise ValueError(f"backend address {address!r} must start with tcp:// or ipc://")
    if parts.scheme == "tcp":
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or not port:
            raise ValueError(f"backend address {address!r} needs a host and a port, e.g. tcp://127.0.0.1:5555")
    if not is_loopback(address) and not online_access:
        raise ValueError(f"backend address {address!r} is not on this machine; enable Preferences > System > "
                         "Allow Online Access to use a remote backend (loopback addresses never need it)")


@dataclass
class Job:
    """One request and what came back. Callbacks run on the thread that calls `BackendClient.poll()`."""

    id: str
    op: str
    state: str = PENDING
    stage: str = "queued"
    done: float = 0.0
    result: dict | None = None
    error: BackendError | None = None
    on_progress: Callable[["Job"], None] | None = None
    on_done: Callable[["Job"], None] | None = None
    idle_timeout: float | None = None          # overrides the client's for this job
    last_activity: float = field(default_factory=time.monotonic)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES


class BackendClient:
    def __init__(self, address: str, token: str = "", idle_timeout: float = 120.0,
                 liveness: Callable[[], str | None] | None = None):
        """address: ZeroMQ endpoint of `gid serve`; liveness(): None while the backend may be alive, else why not."""
        self.address = address
        self.token = token or None
        self.idle_timeout = float(idle_timeout)
        self.liveness = liveness
        # how the last connection handshake ended: None (none yet), "" (admitted) or why the backend refused it
        self.handshake: str | None = None
        self.jobs: dict[str, Job] = {}
        self._outbox: queue.Queue = queue.Queue()
        self._inbox: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gid-client", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- worker thread (socket I/O only)
    def _run(self) -> None:
        import zmq  # shipped as a wheel with the extension

        ctx = zmq.Context.instance()
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        monitor = protocol.prepare_client_socket(sock, self.token)
        try:
            sock.connect(self.address)
        except zmq.ZMQError as exc:
            self._inbox.put(("fatal", f"cannot connect to {self.address}: {exc}"))
            sock.disable_monitor()
            monitor.close(0)
            sock.close(0)
            return
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                while True:
                    try:
                        frames = self._outbox.get_nowait()
                    except queue.Empty:
                        break
                    sock.send_multipart(frames, copy=False)
                events = dict(poller.poll(20))
                if events.get(monitor):
                    outcome = protocol.handshake_outcome(monitor, self.address, self.token)
                    if outcome is not None:
                        self._inbox.put(("handshake", outcome))
                if events.get(sock):
                    while True:
                        try:
                            frames = sock.recv_multipart(zmq.NOBLOCK, copy=True)
                        except zmq.Again:
                            break
                        try:
                            self._inbox.put(("reply", protocol.parse_reply(frames)))
                        except protocol.ProtocolError as exc:
                            self._inbox.put(("bad", f"unreadable reply from backend: {exc}"))
        finally:
            sock.disable_monitor()
            monitor.close(0)
            sock.close(0)

    # ---------------------------------------------------------------- main thread API
    def submit(self, op: str, args: dict | None = None, on_progress=None, on_done=None,
               idle_timeout: float | None = None) -> Job:
        """Queue a request; returns at once. Arrays in args are sent as raw frames. idle_timeout: seconds of
        silence after which this job fails (default: the client's)."""
        if self._stop.is_set():
            raise RuntimeError("the backend client was closed")
        msg = protocol.request(op, args or {}, token=self.token)
        job = Job(msg["id"], op, on_progress=on_progress, on_done=on_done, idle_timeout=idle_timeout)
        self.jobs[job.id] = job
        self._outbox.put(protocol.encode(msg))
        return job

    def cancel(self, job: Job) -> None:
        """Ask the backend to cancel; the job ends when the backend answers (or at once, locally)."""
        if job.finished:
            return
        self._outbox.put(protocol.encode(protocol.request("cancel", {"target": job.id}, token=self.token)))
        self._finish(job, CANCELLED, error=BackendError("cancelled", f"{job.op} was cancelled"))

    def poll(self) -> int:
        """Drain replies (non-blocking), update jobs, run callbacks. Returns the number of messages handled."""
        handled = 0
        while True:
            try:
                kind, payload = self._inbox.get_nowait()
            except queue.Empty:
                break
            handled += 1
            if kind == "reply":
                self._handle(payload)
            elif kind == "handshake":
                self.handshake = payload
            else:  # "fatal" / "bad": nothing in flight can succeed
                self._fail_all("disconnected", payload)
        self._check_health()
        return handled

    def wait(self, job: Job, timeout: float | None = None, interval: float = 0.02) -> Job:
        """Blocking path for scripts and background mode: poll until the job is finished."""
        end = None if timeout is None else time.monotonic() + timeout
        while not job.finished:
            self.poll()
            if job.finished:
                break
            if end is not None and time.monotonic() > end:
                self._finish(job, FAILED, error=BackendError(
                    "timeout", f"{job.op} did not finish within {timeout:.0f} s"))
                break
            time.sleep(interval)
        return job

    def call(self, op: str, args: dict | None = None, timeout: float | None = 60.0) -> dict:
        """Submit and wait; returns the result or raises BackendError."""
        job = self.wait(self.submit(op, args), timeout)
        if job.state != DONE:
            raise job.error or BackendError("internal", f"{op} failed")
        return job.result or {}

    def busy(self) -> bool:
        return any(not j.finished for j in self.jobs.values())

    def close(self) -> None:
        for job in list(self.jobs.values()):
            if not job.finished:
                self._finish(job, CANCELLED, error=BackendError("cancelled", "the add-on disconnected"))
        self._stop.set()
        self._thread.join(timeout=2.0)

    # ---------------------------------------------------------------- internals (main thread)
    def _handle(self, msg: dict) -> None:
        job = self.jobs.get(msg.get("id") or "")
        if job is None or job.finished:
            if msg.get("type") == "error" and msg.get("id") is None:
                self._fail_all(msg["error"]["code"], msg["error"]["message"])
            return  # late replies to cancelled jobs, cancel acknowledgements
        job.last_activity = time.monotonic()
        kind = msg["type"]
        if kind == "progress":
            job.state, job.stage, job.done = RUNNING, msg["stage"], float(msg["done"])
            if job.on_progress is not None:
                job.on_progress(job)
        elif kind == "result":
            self._finish(job, DONE, result=msg["result"])
        else:
            err = msg["error"]
            state = CANCELLED if err["code"] == protocol.CANCELLED else FAILED
            self._finish(job, state, error=BackendError(err["code"], err["message"]))

    def _finish(self, job: Job, state: str, result: dict | None = None, error: BackendError | None = None):
        job.state, job.result, job.error = state, result, error
        if state == DONE:
            job.done = 1.0
        self.jobs.pop(job.id, None)
        if job.on_done is not None:
            job.on_done(job)

    def _fail_all(self, code: str, message: str) -> None:
        for job in list(self.jobs.values()):
            if not job.finished:
                self._finish(job, FAILED, error=BackendError(code, message))

    def _check_health(self) -> None:
        if not self.jobs:
            return
        if self.handshake:
            self._fail_all(protocol.UNAUTHORIZED, self.handshake)
            return
        if self.liveness is not None:
            why = self.liveness()
            if why:
                self._fail_all("backend_exited", why)
                return
        now = time.monotonic()
        for job in list(self.jobs.values()):
            limit = self.idle_timeout if job.idle_timeout is None else job.idle_timeout
            if not job.finished and now - job.last_activity > limit:
                hint = ("is `gid serve` running, and is the token right?" if self.token and self.handshake is None
                        else "is `gid serve` running?")
                self._finish(job, FAILED, error=BackendError(
                    "timeout", f"no answer from the backend at {self.address} for {limit:.0f} s ({job.op}): {hint}"))
