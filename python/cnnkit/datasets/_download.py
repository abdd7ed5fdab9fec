"""Downloads one file with a progress bar and a checksum (md5 or sha256), never leaving a partial
file behind.

The file is streamed to a hidden temporary file in the destination folder, hashed on the way,
and moved into place with os.replace only once the size and checksum are right: an interrupted, failed
or corrupted download (network error, Ctrl-C, bad checksum) removes the temporary file, and a
reader never sees a half-written archive under the final name. The temporary file shares the
folder so that os.replace is a rename on one file system, which is atomic.
"""
import hashlib
import os
import sys
import tempfile
import time

CHUNK_BYTES = 1 << 20


class ChecksumError(ValueError):
    """The downloaded bytes do not have the published checksum; the file was removed."""


def hash_algorithm(file_hash):
    """'sha256' for a 64-digit hex hash, 'md5' for a 32-digit one (as Keras' get_file guesses)."""
    algorithm = {64: "sha256", 32: "md5"}.get(len(file_hash))
    if algorithm is None or any(c not in "0123456789abcdef" for c in file_hash.lower()):
        raise ValueError(f"{file_hash!r} is neither an md5 (32 hex digits) nor a sha256 (64 hex digits)")
    return algorithm


class _ProgressBar:
    """Keras-style download progress on stderr: redrawn in place on a terminal, a single summary
    line otherwise (so logs are not flooded with carriage returns)."""

    def __init__(self, total, stream=None, width=30):
        stream = stream or sys.stderr  # looked up now: sys.stderr may have been replaced since import
        self.total, self.stream, self.width = total, stream, width
        self.interactive = hasattr(stream, "isatty") and stream.isatty()
        self.start = self.last_draw = time.monotonic()

    def update(self, done, final=False):
        now = time.monotonic()
        if not final and (not self.interactive or now - self.last_draw < 0.1):
            return
        self.last_draw = now
        if self.total:
            filled = min(self.width, self.width * done // self.total)
            bar = "=" * filled + (">" if filled < self.width else "") + "." * (self.width - filled - 1)
            text = f"{done}/{self.total} [{bar[:self.width]}]"
        else:
            text = f"{done} bytes"
        rate = done / max(now - self.start, 1e-9) / 1e6
        line = f"{text} - {now - self.start:.0f}s {rate:.1f}MB/s"
        self.stream.write(("\r" if self.interactive else "") + line + ("\n" if final else ""))
        self.stream.flush()


def download(url, destination, file_hash, timeout=60, progress=True):
    """Fetches `url` into the file `destination` (whose folder must exist) and returns its path.

    `file_hash` is the published md5 or sha256 (hex; which one is told by its length). Raises
    ChecksumError when the bytes hash differently, and lets network errors
    (urllib.error.URLError, OSError, http.client.IncompleteRead) propagate; in every failing case
    `destination` is left untouched and no temporary file remains."""
    algorithm = hash_algorithm(file_hash)
    folder, name = os.path.split(os.path.abspath(destination))
    descriptor, partial = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
    try:
        import urllib.request  # here, not at `import cnnkit`: only a download needs it
        digest = hashlib.new(algorithm)
        with os.fdopen(descriptor, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0)
            bar = _ProgressBar(total) if progress else None
            if bar:
                print(f"Downloading data from {url}", file=bar.stream)
            done = 0
            while chunk := response.read(CHUNK_BYTES):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if bar:
                    bar.update(done)
            if bar:
                bar.update(done, final=True)
        if total and done != total:
            raise OSError(f"download of {url} stopped after {done} of {total} bytes")
        if digest.hexdigest() != file_hash.lower():
            raise ChecksumError(f"the file downloaded from {url} has {algorithm} {digest.hexdigest()}, "
                                f"not the published {file_hash}; it was removed")
        os.replace(partial, destination)
    except BaseException:
        # BaseException: Ctrl-C during a long download must not leave a partial file either.
        try:
            os.remove(partial)
        except FileNotFoundError:
            pass
        raise
    return destination
