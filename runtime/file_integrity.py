"""sha256 of bundle files, hashed once per file state and again whenever the state changes.

A file's state is one `stat`: (device, inode, size, mtime_ns, ctime_ns). Any write, truncate,
replace or `touch` changes it (ctime cannot be set back from user space), so a cheap stat tells
whether a file verified earlier may have changed. Digests are cached per (path, state), shared
by every Bundle in the process, so re-opening an unchanged bundle re-hashes nothing.

Filesystem timestamps are coarse (a few ms on ext4): a file hashed within RACY_NS of its last
change could be rewritten again within the same timestamp tick without its state changing
(git's "racily clean" problem). A state that was that recent when hashed is never trusted: the
file is re-hashed at every check until a hash is taken more than RACY_NS after its last change.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from .errors import BundleError

RACY_NS = 2_000_000_000
_CACHE_MAX = 4096

_cache: dict[tuple, str] = {}  # (path, state) -> sha256
_lock = threading.Lock()


@contextmanager
def bundle_file_errors(path: Path, action: str):
    """OS errors on a bundle file as BundleErrors naming it."""
    try:
        yield
    except FileNotFoundError:
        raise BundleError(f"{path}: missing from the bundle") from None
    except OSError as exc:
        raise BundleError(f"{path}: cannot {action} ({exc.strerror or exc})") from exc


def file_state(path: Path) -> tuple[int, int, int, int, int]:
    with bundle_file_errors(path, "stat"):
        st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise BundleError(f"{path}: not a regular file")
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def is_racy(state: tuple) -> bool:
    """Changed so recently that a further change could keep the same state."""
    return time.time_ns() - max(state[3], state[4]) < RACY_NS


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with bundle_file_errors(path, "read"), open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def digest(path: Path) -> tuple[str, tuple | None]:
    """(sha256, the state it belongs to — None when that state cannot be trusted later because it
    was racy when hashed); hashes only when this (path, state) was not seen before."""
    state = file_state(path)
    key = (str(path), state)
    cached = _cache.get(key)
    if cached is not None:
        return cached, state
    value = sha256_file(path)
    after = file_state(path)
    if after != state:  # written while we read it: the digest belongs to no state
        raise BundleError(f"{path}: changed while it was being verified")
    if is_racy(state):
        return value, None
    with _lock:
        if len(_cache) >= _CACHE_MAX:
            _cache.pop(next(iter(_cache)))
        _cache[key] = value
    return value, state
