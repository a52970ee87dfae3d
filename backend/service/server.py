"""The GID service's transport: one ROUTER socket loop (framing, limits, token) in front of the job queue and the
worker thread that owns the models (backend/service/worker.py).

Threads and who touches what:
- the socket thread (`Server.serve_forever`) alone touches the ROUTER socket. It parses and validates every
  request at once (shared.protocol + backend.service.ops), answers `ping` and `cancel` itself and queues the rest
  (backend.service.worker.JobQueue); it never runs model code, so ping is answered while a job runs.
- the worker thread takes one job at a time from the queue and runs it with a JobContext whose progress goes,
  already encoded, into an outbox (queue.Queue); a byte on an inproc PAIR socket wakes the socket thread, which
  sends it to the right client identity.
- a client that has gone away is found when a send to its identity fails (ROUTER_MANDATORY -> EHOSTUNREACH):
  its queued jobs are dropped and its running job cancelled at its next step boundary.

Memory is bounded: a request is read frame by frame, and as soon as one limit is crossed (envelope size, frame
count, one frame's size, the message's total) or the envelope's token is wrong, nothing more of it is kept: the
rest is read and dropped and the client gets one error (`too_large`, `unauthorized`) with the request id when
the envelope had one. MAXMSGSIZE is the message limit, so ZeroMQ itself cuts off (silently: it drops the
connection) only a frame that no valid message could hold; a frame over the per-frame limit but under that gets
`too_large`. RCVHWM bounds queued messages per client, then a bounded job queue and a bounded outbox of final
replies waiting for a slow client.

ZeroMQ delivers a multipart message only once all of it has arrived, so an envelope check alone would let a peer
make the server buffer one whole message before any of it is read. So with a token it is checked first in the
connection handshake (ZMTP PLAIN, user "gid", password = token, answered here over ZAP): a peer without it never
gets a message in at all. The envelope check stays behind it (a peer could pass the handshake and still send a
request without its token).
"""
from __future__ import annotations

import collections
import errno
import hmac
import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field

import zmq

from shared import protocol
from shared.protocol import BAD_REQUEST, BUSY, CANCELLED, INTERNAL, INVALID_ARGUMENT, TOO_LARGE, UNAUTHORIZED, \
    UNKNOWN_OP, Limits, ProtocolError

from .. import __version__
from .ops import Models, OpLimits, available_ops
from .worker import Job, JobQueue, Outgoing, Worker

log = logging.getLogger("gid.server")

RETRY_FINAL_S = 30.0           # how long a final reply waits for a slow client's full pipe before it is dropped
MAX_OUTBOX_RETRIES = 1000      # final replies parked for slow clients (bounded: the queue bounds jobs anyway)
ZAP_ENDPOINT = "inproc://zeromq.zap.01"   # fixed by the ZAP RFC (27/ZAP)


@dataclass
class ServerConfig:
    bind: str = "tcp://127.0.0.1:5555"
    device: str = "auto"              # what to give the model loaders: auto | cuda | cpu
    device_description: str = "cpu"   # what ping says (backend.device.describe)
    checkpoint: str | None = None
    token: str | None = None
    max_queue: int = 8                # jobs waiting behind the running one
    limits: Limits = field(default_factory=Limits)
    op_limits: OpLimits = field(default_factory=OpLimits)
    test_ops: bool = False


class Server:
    """`Server(config).bind()` -> the real endpoint; then `serve_forever()` until `stop()`."""

    def __init__(self, config: ServerConfig, models: Models | None = None):
        self.config = config
        self.ops = available_ops(config.test_ops)
        self.models = models or Models(config.device, config.checkpoint)
        self.jobs = JobQueue(config.max_queue)
        self.outbox: queue.Queue[Outgoing] = queue.Queue()
        self._retry: collections.deque[Outgoing] = collections.deque()
        self._stop = threading.Event()
        self._gone_identities: collections.OrderedDict[bytes, None] = collections.OrderedDict()
        self.ctx = zmq.Context()
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.router.setsockopt(zmq.LINGER, 500)
        # MAXMSGSIZE applies to each frame and drops the connection without a word: set it to the message limit, so
        # that a frame over the per-frame limit still reaches `_receive` and gets a too_large reply; only a frame no
        # valid message can hold is cut off by zmq.
        limits = config.limits
        self.router.setsockopt(zmq.MAXMSGSIZE, max(limits.max_total_bytes, limits.max_array_bytes,
                                                   limits.max_header_bytes))
        self.router.setsockopt(zmq.RCVHWM, 16)  # bounds what one client can queue here
        self.zap: zmq.Socket | None = None
        if config.token:
            # ZAP: libzmq asks this socket (inproc, answered by the socket thread) about every new connection.
            self.zap = self.ctx.socket(zmq.REP)
            self.zap.bind(ZAP_ENDPOINT)
            self.router.setsockopt(zmq.PLAIN_SERVER, 1)
            self.router.setsockopt(zmq.ZAP_DOMAIN, b"gid")
        self._wake_addr = f"inproc://gid-wake-{uuid.uuid4().hex}"
        self.wake_rx = self.ctx.socket(zmq.PAIR)
        self.wake_rx.bind(self._wake_addr)
        self.endpoint: str | None = None
        self.worker = Worker(self.ctx, self._wake_addr, self.jobs, self.models, self.outbox)

    # ---------------------------------------------------------------------------------------------- lifecycle

    def bind(self) -> str:
        self.router.bind(self.config.bind)
        self.endpoint = self.router.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.worker.start()
        return self.endpoint

    def stop(self) -> None:
        """Ask the loop to end (safe from a signal handler or another thread)."""
        self._stop.set()

    def serve_forever(self) -> None:
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.wake_rx, zmq.POLLIN)
        if self.zap is not None:
            poller.register(self.zap, zmq.POLLIN)
        log.info("serving on %s (device %s, queue %d, test ops %s)", self.endpoint,
                 self.config.device_description, self.config.max_queue, self.config.test_ops)
        try:
            while not self._stop.is_set():
                timeout = 10 if self._retry else 200  # ms; short poll lets signals and stop() be seen quickly
                events = dict(poller.poll(timeout))
                if self.wake_rx in events:
                    self._drain_wake()
                if self.zap is not None and self.zap in events:
                    self._answer_zap()
                self._flush_outbox()
                if self.router in events:
                    for _ in range(256):  # stay fair to the worker's replies under a flood of requests
                        try:
                            identity = self.router.recv(zmq.NOBLOCK, copy=False)
                        except zmq.Again:
                            break
                        self._handle_safely(identity)
                    self._flush_outbox()
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        log.info("shutting down")
        for job in self.jobs.cancel_where(lambda j: True, "server shutting down"):
            self._send_error(job.identity, job.prefix, job.id, CANCELLED, "server shutting down")
        self.jobs.close()
        self.worker.join(timeout=10.0)
        if self.worker.is_alive():
            log.warning("worker still busy after 10 s (a step that does not reach a step boundary); leaving it")
        self._drain_wake()
        self._flush_outbox()
        self.router.close(linger=500)
        self.wake_rx.close(linger=0)
        if self.zap is not None:
            self.zap.close(linger=0)
        if not self.worker.is_alive():
            self.ctx.term()

    # ---------------------------------------------------------------------------------------------- requests

    def _handle_safely(self, identity_frame: zmq.Frame) -> None:
        identity = identity_frame.bytes
        self._gone_identities.pop(identity, None)  # a client that set its own identity may come back
        prefix: list = []
        request_id = None
        try:
            prefix, body = self._receive(identity_frame.more)
            request_id = self._handle(identity, prefix, body)
        except ProtocolError as exc:
            request_id = exc.request_id or request_id
            log.info("refused request %s from %s: %s %s", request_id, identity.hex(), exc.code, exc.message)
            self._send_error(identity, prefix, exc.request_id, exc.code, exc.message)
        except Exception as exc:  # a bug must cost one request, never the server
            log.exception("internal error on a request from %s", identity.hex())
            self._send_error(identity, prefix, request_id, INTERNAL, f"internal error: {type(exc).__name__}: {exc}")

    def _receive(self, more: bool) -> tuple[list, list]:
        """The rest of a message after its identity frame, one frame at a time -> (prefix, body buffers).

        Keeps frames only while every limit holds and the envelope's token is right; from the first breach on it
        reads and drops the rest (zmq hands over a message's frames only together, so they are all there) and
        raises the ProtocolError, with the request id when the envelope had one.
        """
        lim = self.config.limits
        prefix: list = []
        body: list = []
        refusal: ProtocolError | None = None
        request_id = None
        total = 0
        while more:
            frame = self.router.recv(copy=False)
            more = frame.more
            if refusal is not None:
                continue                                  # drain: read and drop
            size = len(frame)
            if not body and not prefix and size == 0 and more:
                prefix = [b""]                            # REQ clients put an empty delimiter before the envelope
                continue
            total += size
            if not body:                                  # the envelope: check it before keeping any array
                if size > lim.max_header_bytes:
                    refusal = ProtocolError(TOO_LARGE, f"envelope of {size} bytes exceeds {lim.max_header_bytes}")
                    continue
                try:
                    request_id = self._check_envelope(frame.buffer)
                except ProtocolError as exc:
                    refusal = exc
                    continue
            elif len(body) > lim.max_frames:
                refusal = ProtocolError(TOO_LARGE, f"more than {lim.max_frames} array frames", request_id)
            elif size > lim.max_array_bytes:
                refusal = ProtocolError(TOO_LARGE, f"frame {len(body)} of {size} bytes exceeds the "
                                                   f"{lim.max_array_bytes}-byte limit of one frame", request_id)
            elif total > lim.max_total_bytes:
                refusal = ProtocolError(TOO_LARGE, f"message of more than {lim.max_total_bytes} bytes", request_id)
            if refusal is not None:
                body.clear()                              # let zmq free what was kept
                continue
            body.append(frame.buffer)
        if refusal is not None:
            raise refusal
        if not body:
            raise ProtocolError(BAD_REQUEST, "empty message")
        return prefix, body

    def _check_envelope(self, envelope) -> str | None:
        """Read the envelope alone: its id (None if unreadable), and the token, before any array frame is kept."""
        header = protocol.read_envelope(envelope, self.config.limits)
        raw_id = header.get("id")
        request_id = raw_id if isinstance(raw_id, str) and 0 < len(raw_id) <= protocol.MAX_ID_LEN else None
        token = header.get("token")
        try:
            self._authorize(token if isinstance(token, str) else None)
        except ProtocolError as exc:
            exc.request_id = request_id
            raise
        return request_id

    def _answer_zap(self) -> None:
        """ZAP (RFC 27) requests from libzmq: admit a PLAIN handshake whose password is the token."""
        token = self.config.token.encode("utf-8")
        while True:
            try:
                msg = self.zap.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            request_id = msg[1] if len(msg) > 1 else b""
            mechanism, credentials = (msg[5], msg[6:]) if len(msg) >= 6 else (b"", [])
            ok = (mechanism == b"PLAIN" and len(credentials) == 2 and credentials[0] == protocol.HANDSHAKE_USER
                  and hmac.compare_digest(credentials[1], token))
            if not ok:
                log.info("refused a connection from %s: no or wrong token in the handshake",
                         msg[3].decode("ascii", "replace") if len(msg) > 3 else "?")
            self.zap.send_multipart([b"1.0", request_id, b"200" if ok else b"400",
                                     b"OK" if ok else b"wrong token", b"", b""])

    def _handle(self, identity: bytes, prefix: list, body: list) -> str:
        req = protocol.parse_request(body, self.config.limits)
        try:
            self._authorize(req.token)
            spec = self.ops.get(req.op)
            if spec is None:
                raise ProtocolError(UNKNOWN_OP, f"unknown op {req.op[:64]!r}; this server knows "
                                                f"{sorted(n for n in self.ops if not n.startswith('_'))}")
            args = spec.validate(req.args, self.config.op_limits)
        except ProtocolError as exc:
            exc.request_id = req.id
            raise
        if req.op == "ping":
            self._send_result(identity, prefix, req.id, self._ping())
        elif req.op == "cancel":
            self._send_result(identity, prefix, req.id, {"cancelled": self._cancel(identity, args["target"], req.id)})
        else:
            self._enqueue(Job(req.id, identity, prefix, spec, args))
        return req.id

    def _authorize(self, token: str | None) -> None:
        if self.config.token is None:
            return
        given = (token or "").encode("utf-8", "replace")
        if not hmac.compare_digest(given, self.config.token.encode("utf-8")):
            raise ProtocolError(UNAUTHORIZED, "missing or wrong token" if token else
                                "this server requires a token: add \"token\" to the request envelope")

    def _enqueue(self, job: Job) -> None:
        same = lambda j: j.identity == job.identity and j.id == job.id  # noqa: E731
        if self.jobs.has(same):
            raise ProtocolError(INVALID_ARGUMENT, f"a job with id {job.id!r} from this client is still running; "
                                                  "use a fresh id per request", job.id)
        if not self.jobs.put(job):
            raise ProtocolError(BUSY, f"the job queue is full ({self.config.max_queue} waiting); retry later",
                                job.id)
        log.info("queued %s %s from %s", job.spec.name, job.id, job.identity.hex())

    def _ping(self) -> dict:
        running, waiting = self.jobs.state()
        lim = self.config.op_limits
        return {"version": __version__, "protocol": protocol.PROTOCOL_VERSION,
                "device": self.config.device_description, "models": self.models.status(),
                "busy": running or waiting > 0, "queued": waiting,
                "ops": sorted(n for n in self.ops if not n.startswith("_")),
                "limits": {"max_pixels": lim.max_pixels, "max_reply_bytes": lim.max_reply_bytes,
                           "max_times": lim.max_times, "max_queue": self.config.max_queue}}

    def _cancel(self, identity: bytes, target: str, request_id: str) -> bool:
        """Cancel this client's job `target` (queued: answered `cancelled` at once). False when it has none by that
        id (never had, or already over); another client's job is not touched and the request gets an error."""
        outcome, job = self.jobs.cancel(identity, target)
        if outcome == "queued":
            self._send_error(job.identity, job.prefix, job.id, CANCELLED, "cancelled before it started")
            log.info("cancelled queued %s %s", job.spec.name, job.id)
        elif outcome == "running":
            log.info("cancelling running %s %s", job.spec.name, job.id)
        elif outcome == "foreign":
            log.info("refused %s's cancel of another client's job %s", identity.hex(), target)
            raise ProtocolError(INVALID_ARGUMENT, f"cancel: job {target!r} was submitted by another client; only "
                                                  "the client that submitted a job may cancel it", request_id)
        return outcome in ("queued", "running")

    def _client_gone(self, identity: bytes) -> None:
        """A send to `identity` failed: the client disconnected. Drop its queued jobs, cancel its running one."""
        if identity not in self._gone_identities:
            log.warning("client %s disconnected; dropping its jobs", identity.hex())
        self._gone_identities[identity] = None
        while len(self._gone_identities) > 1024:
            self._gone_identities.popitem(last=False)
        for job in self.jobs.cancel_where(lambda j: j.identity == identity, "client disconnected"):
            log.info("dropped queued %s %s of a vanished client", job.spec.name, job.id)

    # ---------------------------------------------------------------------------------------------- sending

    def _send_result(self, identity: bytes, prefix: list, request_id: str, payload: dict) -> None:
        self._send(Outgoing(identity, prefix + protocol.encode(protocol.result(request_id, payload)), True))

    def _send_error(self, identity: bytes, prefix: list, request_id: str | None, code: str, message: str) -> None:
        self._send(Outgoing(identity, prefix + protocol.encode(protocol.error(request_id, code, message)), True))

    def _send(self, out: Outgoing) -> bool:
        """Socket thread only. Returns False when the message could not be handed to zmq."""
        try:
            self.router.send_multipart([out.identity] + out.frames, zmq.NOBLOCK, copy=False)
            return True
        except zmq.ZMQError as exc:
            if exc.errno == errno.EHOSTUNREACH:
                self._client_gone(out.identity)
            elif exc.errno == errno.EAGAIN and out.final:
                # The client's pipe is full (it reads slowly): park the final reply and retry; progress is dropped.
                if len(self._retry) < MAX_OUTBOX_RETRIES:
                    out.deadline = out.deadline or time.monotonic() + RETRY_FINAL_S
                    self._retry.append(out)
                else:
                    log.warning("outbox full; dropping a reply to %s", out.identity.hex())
            elif exc.errno != errno.EAGAIN:
                log.warning("send to %s failed: %s", out.identity.hex(), exc)
            return False

    def _flush_outbox(self) -> None:
        for _ in range(len(self._retry)):
            out = self._retry.popleft()
            if time.monotonic() > out.deadline:
                log.warning("dropping a reply to %s: the client did not read it for %.0f s", out.identity.hex(),
                            RETRY_FINAL_S)
                continue
            self._send(out)
        while True:
            try:
                out = self.outbox.get_nowait()
            except queue.Empty:
                return
            if out.identity in self._gone_identities:
                continue
            self._send(out)

    def _drain_wake(self) -> None:
        while True:
            try:
                self.wake_rx.recv(zmq.NOBLOCK)
            except zmq.Again:
                return

def is_loopback_endpoint(endpoint: str) -> bool:
    """True for ipc://, inproc:// and tcp:// on a loopback address; False for anything reachable from outside."""
    scheme, _, rest = endpoint.partition("://")
    if scheme in ("ipc", "inproc"):
        return True
    if scheme != "tcp":
        return False
    host = rest.rsplit(":", 1)[0].strip("[]")
    if ";" in host:  # tcp://source;dest form: the bound (dest) side is what matters
        host = host.split(";")[-1]
    return host == "localhost" or host == "::1" or host.startswith("127.")

