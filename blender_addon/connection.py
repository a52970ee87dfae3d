"""The add-on's one backend connection: client, optional managed `gid serve` process, UI timer, jobs.

A `Task` is one user action that may need several requests (a bake asks for frames in chunks). The UI timer
(`bpy.app.timers`) calls `pump()`, which polls the client, so task callbacks run on the main thread; scripts
and background mode call `run_blocking(task)` instead (timers never fire there).
"""
from __future__ import annotations

import abc
import os
import time

import bpy

from .backend_process import BackendProcess, port_open, serve_command, serve_env
from .client import BackendClient, BackendError, check_address, is_loopback

_client: BackendClient | None = None
_process: BackendProcess | None = None
_task = None          # the running Task, if any
TIMER_INTERVAL = 0.1


def prefs(context=None):
    context = context or bpy.context
    return context.preferences.addons[__package__].preferences


def online_access() -> bool:
    return bool(getattr(bpy.app, "online_access", True))


def log_path() -> str:
    try:
        folder = bpy.utils.extension_path_user(__package__, path="logs", create=True)
    except (ValueError, AttributeError):  # not installed as an extension (tests importing the source)
        import tempfile

        folder = os.path.join(tempfile.gettempdir(), "gid_addon_logs")
        os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, "serve.log")


def process() -> BackendProcess | None:
    return _process


def start_backend(context=None, wait: bool = True, timeout: float = 120.0) -> BackendProcess:
    """Launch `gid serve` on the preferences' address (loopback only) and wait until it listens."""
    global _process
    p = prefs(context)
    if not is_loopback(p.address):
        raise ValueError(f"a backend can only be started on this machine; {p.address} is not a loopback address")
    check_address(p.address, online_access())
    if _process is not None and _process.running():
        return _process
    if port_open(p.address):
        raise RuntimeError(f"something already listens on {p.address}; press Connect to use it")
    argv = serve_command(p.python_path, p.command, p.address, p.serve_args)
    if _process is not None:   # one we started that has exited: release its log
        _process.stop()
    _process = BackendProcess(argv, log_path(), cwd=p.working_dir or None, env=serve_env(p.token))
    disconnect()
    if wait:
        _process.wait_ready(p.address, timeout)
    return _process


def stop_backend() -> None:
    global _process
    disconnect()
    if _process is not None:
        _process.stop()
        _process = None


def _liveness() -> str | None:
    return _process.liveness() if _process is not None else None


def client(context=None, auto_start: bool = True) -> BackendClient:
    """The connected client for the preferences' address (re-created when the address or token changes)."""
    global _client
    p = prefs(context)
    check_address(p.address, online_access())
    if _client is not None and (_client.address != p.address or (_client.token or "") != p.token):
        disconnect()
    if (auto_start and p.auto_start and _process is not None and not _process.running()
            and (_task is None or _task.finished)):
        # The backend we started has died (crash, killed, out of memory): its socket leads nowhere; start a
        # new one below. Not under a running task: that one first fails saying the backend exited. Without
        # auto-start the old client stays, so requests fail at once saying so.
        disconnect()
    if _client is None:
        if (auto_start and p.auto_start and is_loopback(p.address) and not port_open(p.address)
                and (_process is None or not _process.running())):
            start_backend(context, wait=False)
        _client = BackendClient(p.address, p.token, idle_timeout=p.timeout, liveness=_liveness)
    _client.idle_timeout = p.timeout
    return _client


def disconnect() -> None:
    global _client
    if _client is not None:
        _client.close()
        _client = None


def status_line(info: dict) -> str:
    models = info.get("models", {})
    motion = models.get("motion", {}).get("state", "?")
    render = models.get("render", {}).get("state", "?")
    return f"gid {info.get('version', '?')} on {info.get('device', '?')} | motion: {motion}, render: {render}"


# --------------------------------------------------------------------------------------------------------
# tasks


class Task(abc.ABC):
    """A user action driven by backend replies. Subclasses submit requests and implement `on_job_done`.

    finished/ok/message tell how it ended; `cancel()` stops it at the backend and locally.
    """

    label = "working"

    def __init__(self):
        self.finished = False
        self.ok = False
        self.message = ""
        self.job = None
        self.progress = 0.0
        self.stage = ""

    @abc.abstractmethod
    def start(self, cl: BackendClient) -> None:
        """Send the task's first request(s) through `self.submit`."""

    def submit(self, cl: BackendClient, op: str, args: dict, idle_timeout: float | None = None) -> None:
        self.job = cl.submit(op, args, on_progress=self._on_progress, on_done=self._on_done,
                             idle_timeout=idle_timeout)

    def _on_progress(self, job) -> None:
        self.stage = job.stage
        self.progress = self.overall(job.done)
        report_progress(self)

    def overall(self, done: float) -> float:
        return done

    def _on_done(self, job) -> None:
        if self.finished:
            return
        try:
            if job.state != "done":
                raise job.error or BackendError("internal", f"{job.op} failed")
            self.on_job_done(job)
        except Exception as exc:  # report any failure, clean up, never leave the UI busy
            self.fail(str(exc))

    @abc.abstractmethod
    def on_job_done(self, job) -> None:
        """Use the finished job's result; end with `succeed` or `fail`."""

    def succeed(self, message: str) -> None:
        self.finished, self.ok, self.message = True, True, message
        self.cleanup()
        end_task(self)

    def fail(self, message: str) -> None:
        self.finished, self.ok, self.message = True, False, message
        self.cleanup()
        end_task(self)

    def cleanup(self) -> None:
        """Called once when the task ends (either way): remove temporary files."""

    def cancel(self) -> None:
        if self.finished:
            return
        if self.job is not None and _client is not None:
            _client.cancel(self.job)   # runs _on_done -> fail("... cancelled")
        if not self.finished:
            self.fail("cancelled")


class PingTask(Task):  # noqa: F811
    """Ask the backend for its status (answered by the server's socket thread, even while it works)."""

    label = "Connecting"

    def __init__(self, wait_seconds: float = 10.0):
        super().__init__()
        self.wait_seconds = wait_seconds
        self.info: dict = {}

    def start(self, cl: BackendClient) -> None:
        self.stage = cl.address
        self.submit(cl, "ping", {}, idle_timeout=self.wait_seconds)

    def on_job_done(self, job) -> None:
        self.info = job.result or {}
        bpy.context.window_manager.gid_job.status = status_line(self.info)
        self.succeed(status_line(self.info))

    def cleanup(self) -> None:
        if not self.ok:
            bpy.context.window_manager.gid_job.status = f"not connected: {self.message}"


class TaskOperatorMixin:
    """Runs a Task: blocking in background mode / scripts (`blocking=True`), else modal: the UI stays live,
    progress shows in the panel and status bar, Esc cancels."""

    blocking: bpy.props.BoolProperty(name="Blocking", default=False, options={"SKIP_SAVE"},
                                     description="Wait for the result (scripts; always on in background mode)")
    timeout: bpy.props.FloatProperty(name="Timeout", default=3600.0, min=1.0, options={"SKIP_SAVE"})

    def make_task(self, context) -> Task:
        raise TypeError(f"{type(self).__name__} must define make_task(context) -> Task")

    def execute(self, context):
        try:
            task = self.make_task(context)
            if bpy.app.background or self.blocking:
                run_blocking(task, context, self.timeout)
            else:
                begin(task, context)
        except (ValueError, RuntimeError, OSError, BackendError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if bpy.app.background or self.blocking or task.finished:
            if not task.ok:
                self.report({"ERROR"}, f"{task.label} failed: {task.message}")
                return {"CANCELLED"}
            self.report({"INFO"}, task.message)
            return {"FINISHED"}
        self._task = task
        # a window timer wakes modal() even without input events, so it ends as soon as the task does
        self._timer = context.window_manager.event_timer_add(TIMER_INTERVAL, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def invoke(self, context, event):
        return self.execute(context)

    def modal(self, context, event):
        task = self._task
        if event.type == "ESC" and event.value == "PRESS" and not task.finished:
            task.cancel()
        if task.finished:
            context.window_manager.event_timer_remove(self._timer)
            self.report({"INFO"} if task.ok else {"ERROR"}, task.message or task.label)
            return {"FINISHED"} if task.ok else {"CANCELLED"}
        return {"PASS_THROUGH"}


def current_task():
    return _task


def begin(task: Task, context=None) -> Task:
    """Start a task (one at a time) on the connected client."""
    global _task
    if _task is not None and not _task.finished:
        raise RuntimeError(f"another job is running ({_task.label}); cancel it first")
    cl = client(context)
    _task = task
    wm = bpy.context.window_manager
    wm.gid_job.busy, wm.gid_job.label, wm.gid_job.progress, wm.gid_job.message = True, task.label, 0.0, ""
    try:
        task.start(cl)
    except Exception as exc:
        task.fail(str(exc))
    if not bpy.app.background and not bpy.app.timers.is_registered(pump):
        bpy.app.timers.register(pump, first_interval=TIMER_INTERVAL)
    return task


def run_blocking(task: Task, context=None, timeout: float = 600.0) -> Task:
    """Scripts / background mode: start the task and poll until it ends (or time out and cancel it)."""
    begin(task, context)
    end = time.monotonic() + timeout
    while not task.finished:
        if _client is not None:
            _client.poll()
        if task.finished:
            break
        if time.monotonic() > end:
            task.cancel()
            task.message = f"{task.label} timed out after {timeout:.0f} s"
            break
        time.sleep(0.02)
    return task


def report_progress(task: Task) -> None:
    wm = bpy.context.window_manager
    wm.gid_job.progress = task.progress
    wm.gid_job.label = f"{task.label}: {task.stage}" if task.stage else task.label
    if not bpy.app.background:
        _redraw()


def end_task(task: Task) -> None:
    global _task
    wm = bpy.context.window_manager
    wm.gid_job.busy = False
    wm.gid_job.progress = 1.0 if task.ok else wm.gid_job.progress
    wm.gid_job.message = task.message
    if _task is task:
        _task = None
    if not bpy.app.background:
        _redraw()


def _redraw() -> None:
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type in ("VIEW_3D", "STATUSBAR", "PREFERENCES"):
                area.tag_redraw()


def pump():
    """bpy.app.timers callback (UI): poll replies; keep running while a task is active."""
    if _client is not None:
        try:
            _client.poll()
        except Exception as exc:  # never let the timer die silently with a task left busy
            if _task is not None:
                _task.fail(f"backend client error: {exc}")
    return TIMER_INTERVAL if (_task is not None and not _task.finished) else None


def shutdown() -> None:
    """On unregister: cancel the task, close the socket, stop a backend we started."""
    global _task
    if _task is not None and not _task.finished:
        _task.cancel()
    _task = None
    if bpy.app.timers.is_registered(pump):
        bpy.app.timers.unregister(pump)
    stop_backend()
