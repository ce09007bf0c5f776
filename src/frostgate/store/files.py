"""Reading files an operator names (packets, exported checkpoints), within bounds.

A path may name a device or a pipe as easily as a file: ``/dev/zero`` reports size 0 and
never ends, and opening a FIFO blocks until a writer comes. The file is opened without
blocking, checked to be a regular file on the open descriptor (so it cannot be swapped
between the check and the read), and read to at most one byte past the cap.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["NotARegularFile", "TooLarge", "read_regular_file"]


class NotARegularFile(OSError):
    """The path names a device, a pipe, a directory or a socket."""


class TooLarge(OSError):
    """The file holds more than the cap."""


def read_regular_file(path: Path, cap: int) -> bytes:
    """The bytes of the regular file at ``path``, at most ``cap`` of them.

    Raises :class:`NotARegularFile`, :class:`TooLarge`, or the ``OSError`` of opening."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise NotARegularFile(f"{path} is not a regular file")
        if info.st_size > cap:
            raise TooLarge(f"{path} is over the {cap}-byte cap")
        data = handle.read(cap + 1)
    if len(data) > cap:
        raise TooLarge(f"{path} is over the {cap}-byte cap")
    return data
