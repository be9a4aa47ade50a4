"""Crash-safe writes: a file or a folder is either the old one or the new one, complete.

Files: written to a temporary sibling, fsynced, then `os.replace`d over the target.
Folders (bundles): built in a temporary sibling, every file and folder fsynced, then swapped
with the target in one step (Linux `renameat2(RENAME_EXCHANGE)`), so the previous folder stays
in place until the new one is complete. Where the exchange is unavailable (other systems,
filesystems without it) the swap is two renames; a kill between them leaves the previous folder
complete at `.<name>.prev`, which the next `publish_dir` puts back before it starts.
Modes follow the umask (plain `mkdir`/`open` with 0o777/0o666), not tempfile's 0o700/0o600.
"""

from __future__ import annotations

import ctypes
import errno
import os
import secrets
import shutil
from pathlib import Path

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file and folder under `root` (folders after their entries), then `root`."""
    for folder, _, files in os.walk(root, topdown=False):
        for name in files:
            _fsync_path(Path(folder) / name)
        _fsync_path(Path(folder))


def _temp_name(target: Path, kind: str) -> Path:
    return target.with_name(f".{target.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}")


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write(path: str | Path, write) -> Path:
    """Call `write(tmp_path)` to fill a temporary sibling, then fsync and replace `path`."""
    path = Path(path)
    tmp = _temp_name(path, "tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # umask decides the mode
    try:
        mode = tmp.stat().st_mode & 0o777
        write(tmp)
        if tmp.stat().st_mode & 0o777 != mode:  # writers that recreate the file (0o600) lose the umask
            tmp.chmod(mode)
        _fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_path(path.parent)
    return path


def make_temp_dir(target: str | Path) -> Path:
    """An empty folder beside `target` (same filesystem, so the swap is a rename)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    while True:
        tmp = _temp_name(target, "tmp")
        try:
            tmp.mkdir(0o777)  # umask decides the mode
            return tmp
        except FileExistsError:  # pragma: no cover - 32 random bits collided
            continue


def remove_stale_temps(target: Path) -> None:
    """Temporary siblings left by writers that were killed (their process is gone)."""
    for p in target.parent.glob(f".{target.name}.tmp-*"):
        try:
            pid = int(p.name.rsplit("-", 2)[-2])
        except ValueError:
            continue
        if not _alive(pid):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def previous_dir(target: Path) -> Path:
    """Where the two-rename fallback keeps the previous folder during its swap."""
    return target.with_name(f".{target.name}.prev")


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2). False where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def publish_dir(tmp: Path, target: Path) -> None:
    """Make the complete folder `tmp` appear at `target`, replacing any folder there."""
    tmp, target = Path(tmp), Path(target)
    recover_interrupted(target)
    fsync_tree(tmp)
    if not target.exists():
        os.replace(tmp, target)
    elif _exchange(tmp, target):
        shutil.rmtree(tmp)  # tmp now holds the previous folder
    else:
        prev = previous_dir(target)
        os.replace(target, prev)
        _fsync_path(target.parent)
        os.replace(tmp, target)
        _fsync_path(target.parent)
        shutil.rmtree(prev)
    _fsync_path(target.parent)


def recover_interrupted(target: Path) -> None:
    """Undo a two-rename swap that was killed between its renames."""
    prev = previous_dir(target)
    if prev.is_dir():
        if target.exists():
            shutil.rmtree(prev)
        else:
            os.replace(prev, target)
