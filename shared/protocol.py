"""The wire contract between the Blender add-on (or any script) and the backend. See PROTOCOL.md.

One ZeroMQ multipart message per request and per reply: frame 0 is a msgpack map (the envelope), later frames
are raw array buffers. Arrays anywhere inside the envelope are maps
    {"nd": true, "dtype": "uint8"|"float16"|"float32", "shape": [...], "frame": k}   (bytes in frame k, C order)
or the same with "data": <bin> inline instead of "frame".

Decoding never executes anything (msgpack only, no ext types), bounds every length and every array, and raises
ProtocolError (with an error code from ERROR_CODES) for anything malformed. Pure stdlib + numpy + msgpack.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import msgpack
import numpy as np

PROTOCOL_VERSION = 1

BAD_REQUEST = "bad_request"
UNSUPPORTED_VERSION = "unsupported_version"
UNKNOWN_OP = "unknown_op"
INVALID_ARGUMENT = "invalid_argument"
TOO_LARGE = "too_large"
BUSY = "busy"
CANCELLED = "cancelled"
INTERNAL = "internal"
UNAUTHORIZED = "unauthorized"
ERROR_CODES = (BAD_REQUEST, UNSUPPORTED_VERSION, UNKNOWN_OP, INVALID_ARGUMENT, TOO_LARGE, BUSY, CANCELLED,
               INTERNAL, UNAUTHORIZED)

DTYPES = {"uint8": np.uint8, "float16": np.float16, "float32": np.float32}
REQUEST_KEYS = {"v", "id", "op", "args"}
OPTIONAL_REQUEST_KEYS = {"token"}
MAX_ID_LEN = 128
MAX_OP_LEN = 64


class ProtocolError(Exception):
    """A message that cannot be accepted. `code` is one of ERROR_CODES; `request_id` when it could be read."""

    def __init__(self, code: str, message: str, request_id: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


@dataclass(frozen=True)
class Limits:
    """Bounds on what a peer may send. Defaults fit a 16-megapixel RGB image and a 64-channel 2K volume."""

    max_header_bytes: int = 4 << 20        # msgpack envelope
    max_frames: int = 64                   # array frames after the envelope
    max_array_bytes: int = 1 << 30         # any single array
    max_total_bytes: int = 2 << 30         # all frames together
    max_ndim: int = 6
    max_depth: int = 16                    # nesting of maps and lists
    max_container_len: int = 100_000       # entries of one map or list
    max_str_len: int = 1 << 20
    max_pixels: int = 16_000_000           # images: H * W (checked by `check_pixels`)


DEFAULT_LIMITS = Limits()


# --------------------------------------------------------------------------------------------------------
# encoding


def _pack_arrays(obj, buffers: list, inline_below: int, depth: int = 0):
    if depth > 64:
        raise ValueError("message nested too deeply")
    if isinstance(obj, np.ndarray):
        name = obj.dtype.name
        if name not in DTYPES:
            raise ValueError(f"dtype {name} cannot be sent; use one of {sorted(DTYPES)}")
        arr = np.ascontiguousarray(obj)
        desc = {"nd": True, "dtype": name, "shape": list(arr.shape)}
        if arr.nbytes < inline_below:
            desc["data"] = arr.tobytes()
        else:
            buffers.append(memoryview(arr).cast("B") if arr.nbytes else b"")
            desc["frame"] = len(buffers)
        return desc
    if isinstance(obj, dict):
        return {k: _pack_arrays(v, buffers, inline_below, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_pack_arrays(v, buffers, inline_below, depth + 1) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def encode(message: dict, inline_below: int = 1024) -> list:
    """Envelope dict (may hold numpy arrays anywhere) -> list of frames for `socket.send_multipart`.

    Arrays smaller than `inline_below` bytes travel inline; larger ones in their own frame (zero copy).
    """
    buffers: list = []
    header = _pack_arrays(message, buffers, inline_below)
    return [msgpack.packb(header, use_bin_type=True)] + buffers


def new_id() -> str:
    return uuid.uuid4().hex


def request(op: str, args: dict | None = None, request_id: str | None = None, token: str | None = None) -> dict:
    msg = {"v": PROTOCOL_VERSION, "id": request_id or new_id(), "op": op, "args": args or {}}
    if token is not None:
        msg["token"] = token
    return msg


# ------------------------------------------------------------------------------------------------------------
# the connection handshake: a server with a token admits only ZMTP PLAIN peers whose password is the token, so
# a peer without it cannot make the server buffer even one message (ZeroMQ hands a multipart message over only
# once all of it has arrived). Clients import zmq; this module does not, hence the lazy imports.

HANDSHAKE_USER = b"gid"        # PLAIN user name; the password is the token
HANDSHAKE_RETRY_MS = 20         # reconnect interval of clients (see prepare_client_socket)


def prepare_client_socket(sock, token: str | None):
    """Before `connect`: present the token in the handshake (when there is one) and return a monitor socket
    (PAIR) that reports how each handshake ended; read it with `handshake_outcome`."""
    import zmq

    # A server that wants a token closes a token-less connection as soon as it reads the client's greeting, and
    # the client learns why (a mechanism mismatch) only when the server's greeting arrived first; otherwise it
    # sees a bare broken pipe and reconnects. At libzmq's default 100-200 ms a retry, a run of such races kept
    # the reason from the user for seconds; at 20-40 ms it comes within a fraction of one (localhost retries
    # are cheap).
    sock.setsockopt(zmq.RECONNECT_IVL, HANDSHAKE_RETRY_MS)
    if token:
        sock.setsockopt(zmq.PLAIN_USERNAME, HANDSHAKE_USER)
        sock.setsockopt(zmq.PLAIN_PASSWORD, token.encode("utf-8"))
    return sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
                                   | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL)


def handshake_outcome(monitor, address: str, token: str | None) -> str | None:
    """Read one event from `prepare_client_socket`'s monitor: "" when a handshake succeeded, a message saying
    why the server refused the connection (a token problem), or None for an event that says neither."""
    import zmq
    from zmq.utils.monitor import recv_monitor_message

    event = recv_monitor_message(monitor)
    kind, value = event["event"], event["value"]
    if kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
        return ""
    if kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return f"the backend at {address} refused the connection: is the token right?"
    if kind == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL and value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
        if token:
            return (f"the backend at {address} takes no token (started without --token, or an older gid serve "
                    f"that reads it only from requests): is the token right? Clear it or give the server the same")
        return f"the backend at {address} requires a token: is the token right? (none is set here)"
    return None


def progress(request_id: str, stage: str, done: float) -> dict:
    return {"v": PROTOCOL_VERSION, "id": request_id, "type": "progress", "stage": stage,
            "done": float(min(1.0, max(0.0, done)))}


def result(request_id: str, payload: dict) -> dict:
    return {"v": PROTOCOL_VERSION, "id": request_id, "type": "result", "result": payload}


def error(request_id: str | None, code: str, message: str) -> dict:
    if code not in ERROR_CODES:
        code = INTERNAL
    return {"v": PROTOCOL_VERSION, "id": request_id, "type": "error",
            "error": {"code": code, "message": str(message)[:2000]}}


# --------------------------------------------------------------------------------------------------------
# decoding


def _unpack_header(frame: bytes, limits: Limits):
    if len(frame) > limits.max_header_bytes:
        raise ProtocolError(TOO_LARGE, f"envelope of {len(frame)} bytes exceeds {limits.max_header_bytes}")
    try:
        return msgpack.unpackb(
            frame, raw=False, strict_map_key=True, use_list=True,
            max_str_len=limits.max_str_len, max_bin_len=limits.max_array_bytes,
            max_array_len=limits.max_container_len, max_map_len=limits.max_container_len,
            max_ext_len=0)
    except Exception as exc:  # msgpack raises many types (ValueError, ExtraData, FormatError, ...)
        raise ProtocolError(BAD_REQUEST, f"envelope is not valid msgpack: {type(exc).__name__}") from None


def read_envelope(frame, limits: Limits = DEFAULT_LIMITS) -> dict:
    """Frame 0 alone -> the envelope map, arrays still as descriptors (lets a receiver check id and token before
    it keeps any array frame). Raises ProtocolError."""
    header = _unpack_header(frame, limits)
    if not isinstance(header, dict):
        raise ProtocolError(BAD_REQUEST, "envelope must be a map")
    return header


def _decode_array(desc: dict, frames: list, limits: Limits, used: set) -> np.ndarray:
    keys = set(desc)
    allowed = {"nd", "dtype", "shape", "frame", "data"}
    if keys - allowed or ("frame" in keys) == ("data" in keys):
        raise ProtocolError(INVALID_ARGUMENT, "array needs nd, dtype, shape and exactly one of frame/data")
    dtype_name = desc.get("dtype")
    if dtype_name not in DTYPES:
        raise ProtocolError(INVALID_ARGUMENT, f"array dtype {dtype_name!r} not in {sorted(DTYPES)}")
    shape = desc.get("shape")
    if (not isinstance(shape, list) or len(shape) > limits.max_ndim
            or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d for d in shape)):
        raise ProtocolError(INVALID_ARGUMENT, f"array shape must be a list of <= {limits.max_ndim} "
                                              "non-negative ints")
    dtype = np.dtype(DTYPES[dtype_name])
    # Python ints, each dimension on its own: a zero elsewhere would hide [0, 2**63] from the product, and numpy
    # would then fail on it (or overflow) instead of this message.
    if any(d * dtype.itemsize > limits.max_array_bytes for d in shape):
        raise ProtocolError(INVALID_ARGUMENT, f"array shape {shape} has a dimension over the "
                                              f"{limits.max_array_bytes}-byte array limit")
    n_items = 1
    for d in shape:
        n_items *= d
        if n_items * dtype.itemsize > limits.max_array_bytes:
            raise ProtocolError(TOO_LARGE, f"array of shape {shape} exceeds {limits.max_array_bytes} bytes")
    if "frame" in desc:
        k = desc["frame"]
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k < len(frames):
            raise ProtocolError(INVALID_ARGUMENT, f"array frame {k!r} does not exist")
        if k in used:
            raise ProtocolError(INVALID_ARGUMENT, f"array frame {k} used twice")
        used.add(k)
        buf = frames[k]
    else:
        buf = desc["data"]
        if not isinstance(buf, (bytes, bytearray)):
            raise ProtocolError(INVALID_ARGUMENT, "inline array data must be binary")
    if len(buf) != n_items * dtype.itemsize:
        raise ProtocolError(INVALID_ARGUMENT, f"array of shape {shape} {dtype_name} needs "
                                              f"{n_items * dtype.itemsize} bytes, got {len(buf)}")
    return np.frombuffer(buf, dtype=dtype).reshape(shape)


def _unpack_arrays(obj, frames: list, limits: Limits, used: set, depth: int = 0):
    if depth > limits.max_depth:
        raise ProtocolError(INVALID_ARGUMENT, f"message nested deeper than {limits.max_depth}")
    if isinstance(obj, dict):
        if obj.get("nd") is True:
            return _decode_array(obj, frames, limits, used)
        return {k: _unpack_arrays(v, frames, limits, used, depth + 1) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unpack_arrays(v, frames, limits, used, depth + 1) for v in obj]
    return obj


def decode(frames: list, limits: Limits = DEFAULT_LIMITS) -> dict:
    """Frames -> envelope dict with numpy arrays (read-only views of the frames). Raises ProtocolError."""
    if not isinstance(frames, (list, tuple)) or not frames:
        raise ProtocolError(BAD_REQUEST, "empty message")
    if len(frames) - 1 > limits.max_frames:
        raise ProtocolError(TOO_LARGE, f"{len(frames) - 1} array frames exceed {limits.max_frames}")
    frames = [bytes(f) if not isinstance(f, (bytes, bytearray, memoryview)) else f for f in frames]
    total = sum(len(f) for f in frames)
    if total > limits.max_total_bytes:
        raise ProtocolError(TOO_LARGE, f"message of {total} bytes exceeds {limits.max_total_bytes}")
    header = read_envelope(frames[0], limits)
    raw_id = header.get("id")
    request_id = raw_id if isinstance(raw_id, str) and len(raw_id) <= MAX_ID_LEN else None
    try:
        used: set = set()
        decoded = _unpack_arrays(header, frames, limits, used)
    except ProtocolError as exc:
        exc.request_id = request_id
        raise
    except RecursionError:
        raise ProtocolError(INVALID_ARGUMENT, "message nested too deeply", request_id) from None
    except (ValueError, OverflowError) as exc:  # numpy refusing a shape the checks above let through
        raise ProtocolError(INVALID_ARGUMENT, f"array cannot be decoded: {exc}", request_id) from None
    if len(used) != len(frames) - 1:
        raise ProtocolError(INVALID_ARGUMENT, "message has array frames that no array refers to", request_id)
    return decoded


def is_supported_version(v) -> bool:
    """Only the integer 1: True and 1.0 compare equal to 1 in Python but are not version 1 on the wire."""
    return type(v) is int and v == PROTOCOL_VERSION


@dataclass
class Request:
    id: str
    op: str
    args: dict = field(default_factory=dict)
    token: str | None = None


def parse_request(frames: list, limits: Limits = DEFAULT_LIMITS) -> Request:
    """Frames -> validated Request (envelope only; op arguments are the backend's to check)."""
    msg = decode(frames, limits)
    raw_id = msg.get("id")
    if not isinstance(raw_id, str) or not 0 < len(raw_id) <= MAX_ID_LEN:
        raise ProtocolError(BAD_REQUEST, f"request id must be a string of 1..{MAX_ID_LEN} characters")
    if not is_supported_version(msg.get("v")):
        raise ProtocolError(UNSUPPORTED_VERSION, f"protocol version {msg.get('v')!r} is not supported: \"v\" "
                                                 f"must be the integer {PROTOCOL_VERSION}", raw_id)
    extra = set(msg) - REQUEST_KEYS - OPTIONAL_REQUEST_KEYS
    missing = REQUEST_KEYS - set(msg)
    if extra or missing:
        raise ProtocolError(BAD_REQUEST, f"request envelope keys: missing {sorted(missing)}, "
                                         f"unexpected {sorted(map(str, extra))}", raw_id)
    op = msg["op"]
    if not isinstance(op, str) or not 0 < len(op) <= MAX_OP_LEN:
        raise ProtocolError(BAD_REQUEST, "op must be a non-empty string", raw_id)
    if not isinstance(msg["args"], dict):
        raise ProtocolError(BAD_REQUEST, "args must be a map", raw_id)
    token = msg.get("token")
    if token is not None and not isinstance(token, str):
        raise ProtocolError(BAD_REQUEST, "token must be a string", raw_id)
    return Request(raw_id, op, msg["args"], token)


def parse_reply(frames: list, limits: Limits = DEFAULT_LIMITS) -> dict:
    """Frames -> validated reply dict (type progress | result | error). Raises ProtocolError."""
    msg = decode(frames, limits)
    kind = msg.get("type")
    if not is_supported_version(msg.get("v")):
        raise ProtocolError(UNSUPPORTED_VERSION, f"reply version {msg.get('v')!r} is not supported: \"v\" must "
                                                 f"be the integer {PROTOCOL_VERSION}")
    if kind == "progress":
        if not isinstance(msg.get("stage"), str) or not isinstance(msg.get("done"), (int, float)):
            raise ProtocolError(BAD_REQUEST, "progress needs stage (str) and done (number)")
    elif kind == "result":
        if not isinstance(msg.get("result"), dict):
            raise ProtocolError(BAD_REQUEST, "result needs a map")
    elif kind == "error":
        err = msg.get("error")
        if not isinstance(err, dict) or not isinstance(err.get("code"), str) \
                or not isinstance(err.get("message"), str):
            raise ProtocolError(BAD_REQUEST, "error needs {code: str, message: str}")
    else:
        raise ProtocolError(BAD_REQUEST, f"unknown reply type {kind!r}")
    return msg


def check_pixels(height: int, width: int, limits: Limits = DEFAULT_LIMITS, what: str = "image") -> None:
    """Raise TOO_LARGE when an image exceeds the configured pixel limit."""
    if height * width > limits.max_pixels:
        raise ProtocolError(TOO_LARGE, f"{what} of {width}x{height} = {height * width} pixels exceeds the limit "
                                       f"of {limits.max_pixels}")
