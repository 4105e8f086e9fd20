"""Atomic file writes: a crash, a kill or a full disk leaves either the old file or the new one, never half.

The bottom layer of the package (standard library and torch only), so that the config, the engine and the
analysis write their outputs the same way.

A write goes to a temporary file beside the destination (``.NAME.XXXX.tmp``), is flushed and fsync'ed, then
``os.replace``-d over the destination, and the directory is fsync'ed. A process killed mid-write leaves its
temporary file behind; :func:`remove_stale_temporaries` clears those.

One writer per output directory: :func:`output_lock` holds an OS lock on ``DIR/.videotaf.lock`` for as long as a
command writes into ``DIR``; a second writer is refused, naming the holder's PID and command.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import shlex
import sys
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import torch

from videotaf.errors import OutputExistsError, OutputLockedError, VideotafError


class DiskFullError(OSError):
    """The disk filled up while writing; names the file. Nothing was replaced."""


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(fileobj)`` on a temporary file beside ``path``, fsync it, then rename it over ``path``.

    Raises :class:`DiskFullError` naming ``path`` when the disk fills up (torch reports that as a bare
    ``RuntimeError`` from its zip writer); the destination is untouched and the temporary file removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if _is_disk_full(exc, path.parent):
            raise DiskFullError(
                f"cannot write {path}: the disk is full ({_free_bytes(path.parent)} bytes free)"
            ) from exc
        raise
    _fsync_dir(path.parent)
    return path


def _free_bytes(directory: Path) -> int:
    try:
        st = os.statvfs(directory)
    except OSError:  # pragma: no cover - not a POSIX file system
        return -1
    return st.f_bavail * st.f_frsize


def _is_disk_full(exc: BaseException, directory: Path) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    # torch's zip writer turns ENOSPC into "[enforce fail at inline_container.cc] ... unexpected pos" or
    # "file write failed"; only trust that reading when the disk really is (nearly) full.
    if isinstance(exc, RuntimeError) and ("unexpected pos" in str(exc) or "write failed" in str(exc)):
        return 0 <= _free_bytes(directory) < 1 << 20
    return False


def check_output(path: str | Path, *, overwrite: bool, what: str = "--out") -> Path:
    """Before any work: refuse an existing ``path`` unless ``overwrite``, and make sure it can be written.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is false.
        VideotafError: the nearest existing parent directory is not writable (or is a file).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{what} {path} already exists; pass --overwrite to replace it or choose another path")
    parent = path if path.is_dir() else path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise VideotafError(f"{what} {path}: {parent} is a file, not a directory")
    try:  # a real write: permissions, read-only mounts and root's exemptions all answer truthfully
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise VideotafError(f"{what} {path}: cannot write into {parent} ({exc.strerror or exc})") from exc
    return path


def remove_stale_temporaries(directory: str | Path) -> list[Path]:
    """Delete the ``.NAME.XXXX.tmp`` files that writes killed mid-way left in ``directory``; returns them.

    Call it only where no other process is writing into ``directory`` (e.g. when a run starts or resumes).
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    stale = [p for p in directory.glob(".*.tmp") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


#: What ``torch.load`` raises on a file that is truncated, corrupt or not a weights-only torch file.
TORCH_LOAD_ERRORS: tuple[type[BaseException], ...] = (
    RuntimeError,
    EOFError,
    OSError,
    pickle.UnpicklingError,
    zipfile.BadZipFile,
    ValueError,
)


def torch_load_weights(path: str | Path, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``. The warnings torch gives while refusing a file are dropped with
    it (the caller's one-line error says what is wrong); those of a file that loads are passed on."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        obj = torch.load(path, map_location=map_location, weights_only=True)
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return obj


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Atomically replace ``path`` with ``data``."""
    return atomic_write(path, lambda f: f.write(data))


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` through :func:`atomic_write`."""
    return atomic_write(path, lambda f: torch.save(obj, f))


LOCK_NAME = ".videotaf.lock"


def _holder_text(fd: int) -> str:
    """``pid N: COMMAND`` from the holder's lock file (what :func:`output_lock` writes), or a plain fallback."""
    try:
        raw = os.pread(fd, 4096, 0)
        holder = json.loads(raw.decode())
        return f"pid {holder['pid']}: {holder['command']}"
    except (OSError, ValueError, KeyError, TypeError):  # the holder is between locking and writing its name
        return "a process that has not named itself yet"


def _missing_dirs(directory: Path) -> list[Path]:
    """``directory`` and its ancestors that do not exist yet, deepest first."""
    missing = []
    while not directory.exists() and directory != directory.parent:
        missing.append(directory)
        directory = directory.parent
    return missing


def _lock_fd(path: Path, what: str, directory: Path) -> int:
    """An open descriptor of ``path`` holding its flock; the file is the one at ``path`` now (not one unlinked by
    a holder that released it meanwhile: then open again)."""
    import fcntl  # POSIX only; output_lock checks

    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder_text(fd)
            os.close(fd)
            raise OutputLockedError(
                f"{what} {directory} is being written by another process ({holder}); wait for it to finish or "
                "choose another directory"
            ) from None
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


@contextmanager
def output_lock(directory: str | Path, *, what: str = "--out") -> Iterator[Path]:
    """Hold the writer's lock of ``directory`` (created if needed) until the ``with`` block ends.

    ``fcntl.flock`` on ``DIR/.videotaf.lock``, taken without waiting; the file holds the holder's PID and
    command (``sys.orig_argv``) while it is held and is removed on release, with the directories the lock
    created if they are still empty (a command that fails leaves nothing behind). Why flock: the kernel releases
    it when its process ends in any way (SIGKILL, OOM kill), so a lock left by a killed process is taken over at
    once and never honoured forever, where a PID file needs a liveness guess (PIDs are reused; another host's
    cannot be checked). A killed holder leaves its lock file: the next writer takes it over. The lock file is
    removed while locked and a new writer checks that it locked the file still in place, so removing it is safe.
    ``filelock``'s Unix lock is the same call; it is not a dependency here. Where ``fcntl`` does not exist
    (Windows) no lock is taken.

    Raises:
        OutputLockedError: a live process holds the lock; the one-line message names its PID and command.
    """
    directory = Path(directory)
    try:
        import fcntl  # noqa: F401 (POSIX only: probed here)
    except ImportError:  # pragma: no cover - Windows
        yield directory
        return
    created = _missing_dirs(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_NAME
    try:
        fd = _lock_fd(path, what, directory)
    except BaseException:
        _remove_empty(created)
        raise
    try:
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        holder = {"pid": os.getpid(), "command": shlex.join(getattr(sys, "orig_argv", sys.argv)), "since": started}
        os.ftruncate(fd, 0)  # a killed holder's name may still be there
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        yield directory
    finally:
        path.unlink(missing_ok=True)  # still locked: a writer that opened it now finds it gone and opens anew
        os.close(fd)  # closing the only descriptor releases the flock
        _remove_empty(created)


def _remove_empty(dirs: list[Path]) -> None:
    """Remove the directories of ``dirs`` (deepest first) that are empty; stop at the first that is not."""
    for d in dirs:
        try:
            d.rmdir()
        except OSError:
            return
