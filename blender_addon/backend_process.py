"""Start and stop a local `gid serve` process for the add-on. No bpy in this module.

The backend runs in the user's own Python environment (torch, models), never inside Blender. Its output goes
to a log file whose path the UI shows. `liveness()` lets the client fail jobs at once when the process dies.
"""
from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit

# `gid serve`'s flag and token variable (backend/service/serve_cli.py: ENV_TOKEN); kept in one place.
ADDRESS_FLAG = "--bind"
TOKEN_FLAG = "--token"
TOKEN_ENV = "GID_SERVE_TOKEN"


def serve_command(python_path: str, command: str, address: str, extra: str = "") -> list[str]:
    """The argv that starts `gid serve` on `address`. It never holds the token: any local user can read a
    process's command line (/proc/PID/cmdline, ps); the token goes in the environment (`serve_env`).

    python_path: a Python with the backend installed (`python -m backend serve`); else `command` is split with
    shell rules (default `gid serve`, found on PATH). extra: more `gid serve` options, e.g.
    "--device cuda --checkpoint /path/to/weights".
    """
    if python_path.strip():
        argv = [python_path.strip(), "-m", "backend", "serve"]
    else:
        argv = shlex.split(command or "gid serve", posix=os.name != "nt")
        if not argv:
            raise ValueError("the backend command is empty; set a Python path or a command in the preferences")
    argv += shlex.split(extra, posix=os.name != "nt") if extra.strip() else []
    if any(a == TOKEN_FLAG or a.startswith(TOKEN_FLAG + "=") for a in argv):
        raise ValueError(f"put the token in the Token field, not {TOKEN_FLAG} in the command or options: "
                         f"every user of this machine can read a command line")
    argv += [ADDRESS_FLAG, address]
    return argv


def serve_env(token: str, base: dict | None = None) -> dict:
    """The environment for `gid serve`: this one, with the token in $GID_SERVE_TOKEN (a process's environment
    is readable only by its owner), or without that variable when there is no token (an inherited one would
    make the backend demand a token the add-on does not send)."""
    env = dict(os.environ if base is None else base)
    env.pop(TOKEN_ENV, None)
    if token:
        env[TOKEN_ENV] = token
    return env


def port_open(address: str, timeout: float = 0.2) -> bool:
    """True when something accepts TCP connections at a tcp:// address (cheap 'is a backend there?' check)."""
    parts = urlsplit(address)
    if parts.scheme != "tcp" or not parts.hostname or not parts.port:
        return False
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=timeout):
            return True
    except OSError:
        return False


def free_tcp_address(host: str = "127.0.0.1") -> str:
    """A tcp:// address on a port that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return f"tcp://{host}:{s.getsockname()[1]}"


class BackendProcess:
    def __init__(self, argv: list[str], log_path: str, cwd: str | None = None, env: dict | None = None):
        self.argv = argv
        self.log_path = log_path
        os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
        self._log = open(log_path, "ab")
        flags = subprocess.CREATE_NEW_PROCESS_GROUP if sys.platform == "win32" else 0
        try:
            self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=cwd, env=dict(env or os.environ, PYTHONUNBUFFERED="1"),
                                         creationflags=flags)
        except OSError as exc:
            self._log.close()
            raise RuntimeError(f"could not start the backend ({' '.join(argv)}): {exc}") from exc

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def liveness(self) -> str | None:
        code = self.proc.poll()
        if code is None:
            return None
        return f"the backend process exited with code {code}; see its log: {self.log_path}"

    def wait_ready(self, address: str, timeout: float = 60.0) -> None:
        """Block until the process listens on `address` (tcp), or raise RuntimeError with the log's tail."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not self.running():
                raise RuntimeError(f"{self.liveness()}\n{self.log_tail()}")
            if port_open(address):
                return
            time.sleep(0.1)
        raise RuntimeError(f"the backend did not listen on {address} within {timeout:.0f} s; log: {self.log_path}")

    def log_tail(self, n_bytes: int = 2000) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - n_bytes))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 5.0) -> None:
        if self.running():
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self._log.close()
