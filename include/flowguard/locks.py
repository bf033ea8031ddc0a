"""A file lock with a deadline, for the processes of one host (``flock``)."""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def file_lock(path: Path, timeout: float, on_timeout: Callable[[], Exception],
              poll: float = 0.05) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` for the block; wait at most ``timeout``
    seconds for it, then raise ``on_timeout()``. The lock goes with the process: a killed
    holder cannot leave it held."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise on_timeout() from None
                time.sleep(poll)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
