"""Memory of a process as the memory bars measure it (tests of the service)."""
from __future__ import annotations


def proc_memory_mib(pid: int) -> dict:
    """VmRSS (now) and VmHWM (peak) of a process, in MiB, from /proc (no psutil)."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
    return out
