"""Reads IDX files (the format of the original MNIST and Fashion-MNIST files), plain or gzipped.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions), one
big-endian uint32 per dimension, then the values in row-major order. Only unsigned bytes (type
0x08) occur in these data sets. Everything is checked before it is trusted: the magic number, the
number of dimensions, the dimensions against the bytes that follow (a truncated file and one with
trailing bytes are both refused), so a damaged or foreign file raises ValueError naming it
instead of giving wrongly shaped arrays.
"""
import gzip
import os
import struct
import zlib

import numpy as np

UNSIGNED_BYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK_BYTES = 1 << 20


def read(file, ndim, row_shape=()):
    """The uint8 array stored in the IDX file `file` (gzipped or not: told by its first bytes,
    not by its name). It must have `ndim` dimensions, the last ones equal to `row_shape`."""
    try:
        with open(file, "rb") as raw:
            gzipped = raw.read(2) == _GZIP_MAGIC
            raw.seek(0)
            if gzipped:
                with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                    return _parse(stream, file, ndim, row_shape, size=None)
            return _parse(raw, file, ndim, row_shape, size=os.fstat(raw.fileno()).st_size)
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise ValueError(f"{file}: damaged gzip data ({type(error).__name__}: {error})") from error


def _parse(stream, file, ndim, row_shape, size):
    magic = stream.read(4)
    if len(magic) < 4 or magic[:2] != b"\0\0":
        raise ValueError(f"{file}: not an IDX file (it starts with {magic.hex() or 'nothing'}, "
                         f"not the IDX magic number 0000{UNSIGNED_BYTE:02x}{ndim:02x})")
    if magic[2] != UNSIGNED_BYTE:
        raise ValueError(f"{file}: IDX values of type 0x{magic[2]:02x}; these data sets hold unsigned "
                         f"bytes (0x{UNSIGNED_BYTE:02x})")
    if magic[3] != ndim:
        raise ValueError(f"{file}: an IDX file of {magic[3]} dimension(s), expected {ndim}")
    header = stream.read(4 * ndim)
    if len(header) < 4 * ndim:
        raise ValueError(f"{file}: truncated IDX header ({4 + len(header)} of {4 + 4 * ndim} bytes)")
    shape = struct.unpack(f">{ndim}I", header)
    if tuple(shape[ndim - len(row_shape):]) != tuple(row_shape):
        raise ValueError(f"{file}: IDX dimensions {shape}, expected (n, {', '.join(map(str, row_shape))})")
    expected = int(np.prod(shape, dtype=np.int64))
    offset = 4 + 4 * ndim
    if size is not None and size != offset + expected:
        raise ValueError(_size_message(file, shape, expected, size - offset))
    data = bytearray()
    while len(data) < expected:  # chunked: memory follows the bytes really there, not the header
        chunk = stream.read(min(_CHUNK_BYTES, expected - len(data)))
        if not chunk:
            raise ValueError(_size_message(file, shape, expected, len(data)))
        data += chunk
    if stream.read(1):
        raise ValueError(f"{file}: bytes left after the {expected} values that IDX dimensions {shape} hold")
    return np.frombuffer(data, np.uint8).reshape(shape)  # over a bytearray: writable


def _size_message(file, shape, expected, present):
    if present < expected:
        return f"{file}: truncated: IDX dimensions {shape} need {expected} bytes of values, found {present}"
    return f"{file}: {present - expected} bytes left after the {expected} values that IDX dimensions {shape} hold"
