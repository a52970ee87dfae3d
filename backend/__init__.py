"""The GID backend: models, training, rendering, the ZeroMQ service and the `gid` CLI."""
__version__ = "0.1.0"
