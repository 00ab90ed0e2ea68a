"""Writing files so that a crash, a kill or a full disk never leaves a half-written one.

Every file the project writes goes through :func:`atomic_open`: a temporary file
``.<name>.<random>.tmp`` in the target's folder, flushed and fsynced, renamed over the target
(atomic on POSIX), then the folder fsynced so the rename itself survives a power cut. Until the
rename the previous file is untouched; on any error the temporary file is removed.
:func:`remove_leftovers` deletes the temporary files of writes that were killed outright
(SIGKILL gives no chance to clean up) the next time a run starts in that folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()

#: Temporary files of interrupted writes: ``.<target name>.<random>.tmp``.
LEFTOVER_GLOB = ".*.tmp"


def fsync_dir(folder: str | Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file to write ``path``; it replaces ``path`` when the block ends
    without an exception (flushed, fsynced, renamed, folder fsynced), and is removed if it
    does not. ``mode`` is ``"wb"`` or ``"w"`` (text; ``kwargs`` go to ``open``)."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes whole files: mode 'wb' or 'w', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; a plain open() honours the umask
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {}), **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def atomic_write_json(path: str | Path, data: Any, **dumps_kwargs: Any) -> None:
    """``data`` as JSON (``json.dumps(data, **dumps_kwargs)`` plus a newline), atomically."""
    atomic_write_text(path, json.dumps(data, **dumps_kwargs) + "\n")


def remove_leftovers(folder: str | Path, older_than_s: float = 0.0) -> list[Path]:
    """Delete ``folder``'s temporary files of interrupted writes (:data:`LEFTOVER_GLOB`)
    last modified more than ``older_than_s`` seconds ago (0: all of them; pass a margin
    where another live process may be writing there); returns what was removed."""
    now, removed = time.time(), []
    for p in Path(folder).glob(LEFTOVER_GLOB):
        try:
            if p.is_file() and now - p.stat().st_mtime >= older_than_s:
                p.unlink()
                removed.append(p)
        except OSError:
            continue
    return removed
