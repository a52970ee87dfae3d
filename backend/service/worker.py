"""The job side of the service: the bounded job queue and the one worker thread that runs jobs with the models.

The socket thread (backend/service/server.py) validates a request, wraps it in a `Job` and `put`s it in the
`JobQueue`; the `Worker` thread `take`s one job at a time and runs it with a JobContext. Every reply it makes
(progress, then one result or error) is encoded here and handed back as an `Outgoing` through a queue.Queue,
with a byte on an inproc PAIR socket to wake the socket thread, which alone sends on the ROUTER socket.
Cancelling (by its client, by a vanished client, at shutdown) flags the job's event; the run stops at its next
step boundary.
"""
from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from dataclasses import dataclass, field

import zmq

from shared import protocol
from shared.protocol import CANCELLED, INTERNAL, INVALID_ARGUMENT, TOO_LARGE, ProtocolError

from ..jobs import Cancelled, JobContext
from .ops import Models, OpSpec

log = logging.getLogger("gid.server")

PROGRESS_INTERVAL_S = 0.02     # at most ~50 progress messages per second per job (first and last always sent)


@dataclass(eq=False)
class Job:
    id: str
    identity: bytes
    prefix: list          # frames between identity and envelope (an empty delimiter for REQ clients)
    spec: OpSpec
    args: dict
    cancel_event: threading.Event = field(default_factory=threading.Event)
    cancel_reason: str = "cancelled by request"
    received: float = field(default_factory=time.perf_counter)
    last_progress: float = 0.0


class JobQueue:
    """Bounded FIFO of jobs plus the one running job; shared by the socket thread and the worker."""

    def __init__(self, max_queue: int):
        self.max_queue = max_queue
        self._jobs: collections.deque[Job] = collections.deque()
        self._cond = threading.Condition()
        self.running: Job | None = None
        self._closed = False

    def put(self, job: Job) -> bool:
        with self._cond:
            if len(self._jobs) >= self.max_queue:
                return False
            self._jobs.append(job)
            self._cond.notify()
            return True

    def take(self) -> Job | None:
        """Block until a job is there (it becomes `running`); None once closed."""
        with self._cond:
            while not self._jobs and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            self.running = self._jobs.popleft()
            return self.running

    def finished(self, job: Job) -> None:
        with self._cond:
            if self.running is job:
                self.running = None

    def remove_where(self, pred) -> list[Job]:
        """Take queued (not started) jobs matching `pred` out of the queue."""
        with self._cond:
            gone = [j for j in self._jobs if pred(j)]
            for j in gone:
                self._jobs.remove(j)
            return gone

    def find(self, pred) -> Job | None:
        with self._cond:
            if self.running is not None and pred(self.running):
                return self.running
            return next((j for j in self._jobs if pred(j)), None)

    def has(self, pred) -> bool:
        return self.find(pred) is not None

    def state(self) -> tuple[bool, int]:
        with self._cond:
            return self.running is not None, len(self._jobs)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # cancelling: queued jobs leave the queue (the caller answers them), the running one is flagged

    def cancel(self, identity: bytes, target: str) -> tuple[str, Job | None]:
        """Cancel the job `target` of the client `identity`. Returns ("queued", job): taken out of the queue;
        ("running", job): flagged, it stops at its next step boundary; ("foreign", None): only another client
        has a job by that id (left alone); ("none", None): no such job, or it is over or already cancelled."""
        with self._cond:
            mine = lambda j: j.id == target and j.identity == identity  # noqa: E731
            for j in self._jobs:
                if mine(j):
                    self._jobs.remove(j)
                    return "queued", j
            running = self.running
            if running is not None and mine(running):
                if running.cancel_event.is_set():
                    return "none", None
                running.cancel_event.set()
                return "running", running
            others = ([running] if running is not None else []) + list(self._jobs)
            return ("foreign", None) if any(j.id == target for j in others) else ("none", None)

    def cancel_where(self, pred, reason: str) -> list[Job]:
        """Take the queued jobs matching `pred` out of the queue (returned) and flag the running one with `reason`."""
        gone = self.remove_where(pred)
        with self._cond:
            running = self.running
            if running is not None and pred(running) and not running.cancel_event.is_set():
                running.cancel_reason = reason
                running.cancel_event.set()
        return gone


@dataclass
class Outgoing:
    identity: bytes
    frames: list          # prefix + encoded envelope frames
    final: bool
    deadline: float = 0.0


class Worker:
    """The one thread that runs jobs. Owns nothing of the transport but the sending end of the wake-up socket."""

    def __init__(self, ctx: zmq.Context, wake_addr: str, jobs: JobQueue, models: Models,
                 outbox: queue.Queue):
        self.ctx = ctx
        self.wake_addr = wake_addr
        self.jobs = jobs
        self.models = models
        self.outbox = outbox
        self.thread = threading.Thread(target=self._main, name="gid-worker", daemon=True)
        self._ready = threading.Event()
        self._wake_tx: zmq.Socket | None = None

    def start(self, timeout: float = 5.0) -> None:
        self.thread.start()
        self._ready.wait(timeout)

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)

    def is_alive(self) -> bool:
        return self.thread.is_alive()

    def _main(self) -> None:
        wake_tx = self.ctx.socket(zmq.PAIR)
        wake_tx.setsockopt(zmq.LINGER, 0)
        wake_tx.connect(self.wake_addr)
        self._wake_tx = wake_tx
        self._ready.set()
        try:
            while True:
                job = self.jobs.take()
                if job is None:
                    return
                try:
                    self._run_job(job)
                finally:
                    self.jobs.finished(job)
        finally:
            wake_tx.close(linger=0)

    def _post(self, job: Job, message: dict, final: bool) -> None:
        """Worker thread: hand an envelope to the socket thread."""
        try:
            frames = protocol.encode(message)
        except (ValueError, TypeError) as exc:
            log.exception("could not encode the reply to %s", job.id)
            frames = protocol.encode(protocol.error(job.id, INTERNAL, f"reply could not be encoded: {exc}"))
        self.outbox.put(Outgoing(job.identity, job.prefix + frames, final))
        try:
            self._wake_tx.send(b"", zmq.NOBLOCK)
        except zmq.Again:  # the socket thread already has wake-ups pending
            pass

    def _progress(self, job: Job, stage: str, done: float) -> None:
        now = time.perf_counter()
        if done < 1.0 and job.last_progress and now - job.last_progress < PROGRESS_INTERVAL_S:
            return
        job.last_progress = now
        self._post(job, protocol.progress(job.id, stage, done), final=False)

    def _run_job(self, job: Job) -> None:
        t0 = time.perf_counter()
        ctx = JobContext(on_progress=lambda stage, done: self._progress(job, stage, done),
                         cancel_event=job.cancel_event)
        try:
            ctx.step("started", 0.0)  # also finds a client that left while its job was queued
            reply = protocol.result(job.id, job.spec.run(job.args, self.models, ctx))
            outcome = "done"
        except Cancelled:
            reply, outcome = protocol.error(job.id, CANCELLED, job.cancel_reason), "cancelled"
        except ProtocolError as exc:
            reply, outcome = protocol.error(job.id, exc.code, exc.message), exc.code
        except (ValueError, FileNotFoundError) as exc:  # library code's word for bad input or missing weights
            reply, outcome = protocol.error(job.id, INVALID_ARGUMENT, f"{job.spec.name}: {exc}"), INVALID_ARGUMENT
        except MemoryError:
            reply = protocol.error(job.id, TOO_LARGE, f"{job.spec.name}: out of memory; ask for less at once")
            outcome = TOO_LARGE
        except Exception as exc:
            if type(exc).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError, without importing torch
                reply = protocol.error(job.id, TOO_LARGE, f"{job.spec.name}: device out of memory; ask for less")
                outcome = TOO_LARGE
            else:
                log.exception("job %s %s failed", job.spec.name, job.id)
                reply = protocol.error(job.id, INTERNAL, f"{job.spec.name} failed: {type(exc).__name__}: {exc}")
                outcome = INTERNAL
        finally:
            job.args = {}  # release the request's buffers now, not when the reply is gone
        log.info("%s %s %s in %.3f s (queued %.3f s)", job.spec.name, job.id, outcome,
                 time.perf_counter() - t0, t0 - job.received)
        self.jobs.finished(job)  # before the reply: a client that has its answer never finds the job still running
        self._post(job, reply, final=True)
