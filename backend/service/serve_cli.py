"""`gid serve`: run the ZeroMQ service (backend/service/server.py) until SIGINT/SIGTERM."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

ENV_TOKEN = "GID_SERVE_TOKEN"


def register(subparsers) -> None:
    p = subparsers.add_parser("serve", help="run the backend service (ZeroMQ ROUTER) for Blender and scripts",
                              description="Serve predict/render/simulate over ZeroMQ (see shared/PROTOCOL.md). "
                                          "Prints 'GID backend ready on <endpoint>' once bound.")
    p.add_argument("--bind", default="tcp://127.0.0.1:5555",
                   help="ZeroMQ endpoint (default %(default)s; port 0 picks a free port). Binding anything but "
                        "loopback requires --token")
    p.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    p.add_argument("--checkpoint", default=None,
                   help="weights root laid out like backend/weights/default (<DIR>/vae, <DIR>/ldm, <DIR>/render); "
                        "default: the shipped default weights")
    p.add_argument("--token", default=None,
                   help=f"shared secret (default: ${ENV_TOKEN} if set), at least 8 characters. A client presents it "
                        f"when it connects (ZMTP PLAIN, user 'gid', password = token), so a peer without it gets no "
                        f"connection, and in every request")
    p.add_argument("--max-queue", type=int, default=8, help="jobs that may wait behind the running one")
    p.add_argument("--max-pixels", type=int, default=16_000_000, help="largest image (H*W) accepted")
    p.add_argument("--log-file", default=None,
                   help="rotating log file (default: ~/.cache/gid/serve.log, else runs/logs/serve.log)")
    # Test-only: enables the `_test_*` ops (no models; used by tests/test_server_*.py and the transport bench).
    p.add_argument("--test-ops", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .server import is_loopback_endpoint

    token = args.token if args.token is not None else os.environ.get(ENV_TOKEN) or None
    if token is not None and len(token) < 8:
        raise ValueError("--token must be at least 8 characters")
    if not is_loopback_endpoint(args.bind) and token is None:
        raise ValueError(f"refusing to bind {args.bind} without --token: any machine that can reach it could "
                         f"run jobs on this one. Bind tcp://127.0.0.1:PORT, or pass --token SECRET (or set "
                         f"${ENV_TOKEN}) and give the same token to the clients")
    if args.max_queue < 1 or args.max_pixels < 1:
        raise ValueError("--max-queue and --max-pixels must be >= 1")

    from ..logging_setup import setup_logging
    log_path = setup_logging(args.log_file)
    log = logging.getLogger("gid.serve")

    import zmq

    from shared.protocol import Limits

    from ..device import autocast_dtype, describe, pick_device
    from .ops import OpLimits
    from .server import Server, ServerConfig

    device = pick_device(args.device)
    amp = autocast_dtype(device)
    description = describe(device) + (f" (autocast {str(amp).removeprefix('torch.')})" if amp is not None else "")
    config = ServerConfig(bind=args.bind, device=args.device, device_description=description,
                          checkpoint=args.checkpoint, token=token, max_queue=args.max_queue,
                          limits=Limits(max_pixels=args.max_pixels), op_limits=OpLimits(max_pixels=args.max_pixels),
                          test_ops=args.test_ops)
    server = Server(config)
    try:
        endpoint = server.bind()
    except zmq.ZMQError as exc:
        raise OSError(f"cannot bind {args.bind}: {exc}") from None

    def on_signal(signum, frame):
        log.info("received %s", signal.Signals(signum).name)
        server.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("log file %s", log_path)
    print(f"GID backend ready on {endpoint}", flush=True)
    server.serve_forever()
    logging.shutdown()
    if server.worker.is_alive():
        # The worker is inside a step that never reaches a boundary (e.g. loading weights): do not wait for it.
        sys.stdout.flush()
        os._exit(0)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m backend.service.serve_cli ARGS` = `gid serve ARGS`, without importing the other sub-commands."""
    parser = argparse.ArgumentParser(prog="gid")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["serve", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args) or 0)
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"gid serve: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
