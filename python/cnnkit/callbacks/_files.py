"""Atomic file writes for the callbacks: the new content goes to a temporary file in the same
folder, is flushed to disk, then renamed over the old file (os.replace), so a crash at any
moment leaves either the old file or the new one, never a mix or a half-written line."""
import os
import tempfile


def write_atomically(path, data):
    """Replaces the file at `path` with `data` (bytes)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; a log is not
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def make_parent(path):
    directory = os.path.dirname(os.fspath(path))
    if directory:
        os.makedirs(directory, exist_ok=True)
