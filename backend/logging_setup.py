"""Logging for long-running backend processes: stderr plus a size-bounded rotating file."""
from __future__ import annotations

import logging
import logging.handlers
import os
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"


def default_log_dir() -> Path:
    """$XDG_CACHE_HOME/gid (or ~/.cache/gid); falls back to the repository's runs/ when that is not writable."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    candidates = [Path(base) / "gid", Path(__file__).resolve().parents[1] / "runs" / "logs"]
    for folder in candidates:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if os.access(folder, os.W_OK):
                return folder
        except OSError:
            continue
    raise OSError(f"no writable log folder among {[str(c) for c in candidates]}; pass --log-file")


def setup_logging(log_file: str | os.PathLike | None, name: str = "serve", level: int = logging.INFO,
                  max_bytes: int = 5 << 20, backups: int = 3) -> Path:
    """Log records of the `gid` loggers to stderr and to `log_file` (rotated at max_bytes, `backups` kept)."""
    path = Path(log_file) if log_file else default_log_dir() / f"{name}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger("gid")
    logger.setLevel(level)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    formatter = logging.Formatter(FORMAT)
    stderr = logging.StreamHandler()
    stderr.setFormatter(formatter)
    rotating = logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups,
                                                    encoding="utf-8")
    rotating.setFormatter(formatter)
    logger.addHandler(stderr)
    logger.addHandler(rotating)
    logger.propagate = False
    return path
