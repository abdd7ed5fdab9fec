"""cnnkit.reference: window helpers in plain NumPy."""
import numpy as np

INPLACE_DTYPES = (np.float32, np.float64)


def _pad(x, g, value):
    """x (N,H,W,C) padded with `value`: PT/PL rows/columns before, and after as many as the
    last window needs (none, or cropped away in effect, when 'valid' leaves rows unused)."""
    bottom = max((g.OH - 1) * g.SH + g.KH - g.H - g.PT, 0)
    right = max((g.OW - 1) * g.SW + g.KW - g.W - g.PL, 0)
    return np.pad(x, ((0, 0), (g.PT, bottom), (g.PL, right), (0, 0)), constant_values=value)


def _offsets(g):
    """The (i, j) offsets inside a window, in row-major window order."""
    return [(i, j) for i in range(g.KH) for j in range(g.KW)]


def _tap(g, i, j):
    """Index of the padded-input elements that window offset (i, j) sees, one per output
    pixel: a (N, OH, OW, C) strided view."""
    rows = slice(i, i + (g.OH - 1) * g.SH + 1, g.SH)
    cols = slice(j, j + (g.OW - 1) * g.SW + 1, g.SW)
    return np.s_[:, rows, cols, :]


def _unpad(xp, g):
    return np.ascontiguousarray(xp[:, g.PT:g.PT + g.H, g.PL:g.PL + g.W, :])
