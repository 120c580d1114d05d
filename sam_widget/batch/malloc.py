"""Worker processes that keep freed memory for reuse (glibc's malloc).

Dask's nanny starts worker processes with ``MALLOC_TRIM_THRESHOLD_=65536``
(``distributed.nanny.pre-spawn-environ``) so that they hand freed memory back to the OS.
Setting that variable also switches off glibc's adaptive mmap threshold (``mallopt(3)``):
every allocation over 128 KiB is then a fresh mapping, page-faulted on each use, and the
automatic mask generator allocates such buffers for every batch. A worker's image took
1.6x as long as in a plain process (benchmarks/README.md, "Batch runs"). The nanny also
writes those variables into the environment of the process that starts the cluster, so
later clusters inherit them from there.

:func:`keep_freed_memory` sets, at run time, what glibc's adaptive threshold settles at
(allocations up to 32 MiB from the heap, 64 MiB of freed heap kept), whatever the
environment says. :class:`KeepFreedMemory` does it in every worker of a cluster,
restarted ones included: the local cluster of ``open_executor`` registers it; on a
cluster of your own, ``client.register_plugin(KeepFreedMemory())``. Each worker holds one
image's work at a time, so the memory kept is small next to the model.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from typing import Any

from distributed import WorkerPlugin

__all__ = ["KeepFreedMemory", "keep_freed_memory"]

# mallopt(3) parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# glibc's ceiling for the adaptive mmap threshold on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX), and
# the trim threshold it pairs with it (twice the mmap threshold).
MMAP_THRESHOLD = 32 * 2**20
TRIM_THRESHOLD = 64 * 2**20


def keep_freed_memory() -> bool:
    """Set this process's malloc thresholds (see the module docstring). Returns whether
    they were set (False where the C library is not glibc)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )


class KeepFreedMemory(WorkerPlugin):
    """Runs :func:`keep_freed_memory` in every worker process as it starts."""

    name = "sam-widget-keep-freed-memory"

    def setup(self, worker: Any) -> None:
        worker.sam_widget_keeps_freed_memory = keep_freed_memory()
