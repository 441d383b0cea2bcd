"""One run per output folder: an advisory lock held for the life of the process."""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import UserError

LOCK = ".tunewise.lock"


def lock_output(out: Path):
    """Hold `out` for this run (released when the process ends, however it ends); a second run on the same
    output.dir stops with exit 2 naming the holder's PID. Returns the open lock file (keep it alive)."""
    import fcntl

    out.mkdir(parents=True, exist_ok=True)
    f = (out / LOCK).open("a+", encoding="utf-8")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "unknown"
        f.close()
        raise UserError(f"`{out}` is in use by another tunewise train (PID {holder}): wait for it to finish, or "
                        "set another output.dir") from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f
