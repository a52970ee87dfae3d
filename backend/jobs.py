"""What a long-running job needs from whoever runs it: progress reports and cancellation.

Library code (predict, render, simulate) takes a JobContext and calls `ctx.step(stage, done)` at every step
boundary (a diffusion step, a rendered frame); that reports progress and raises Cancelled when the job was
cancelled. The server, the CLI's progress bar and tests each make their own context.
"""
from __future__ import annotations

import threading
from typing import Callable


class Cancelled(Exception):
    """The job was cancelled; raised at the next step boundary."""


class JobContext:
    def __init__(self, on_progress: Callable[[str, float], None] | None = None,
                 cancel_event: threading.Event | None = None):
        self._on_progress = on_progress
        self.cancel_event = cancel_event or threading.Event()

    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def check(self) -> None:
        if self.cancel_event.is_set():
            raise Cancelled("cancelled")

    def step(self, stage: str, done: float) -> None:
        """Report progress (done in [0, 1]) for a stage, then honour a pending cancel."""
        self.check()
        if self._on_progress is not None:
            self._on_progress(stage, float(done))


NULL_CONTEXT = JobContext()
