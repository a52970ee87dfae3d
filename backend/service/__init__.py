"""The ZeroMQ service: transport and job handling (server), the ops it serves (ops), `gid serve` (serve_cli) and a
blocking client for scripts and tests (client). The wire contract itself lives in shared/protocol.py."""
