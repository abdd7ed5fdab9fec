"""The error every data set loader raises when it can neither find nor fetch its files."""


class DatasetNotFoundError(FileNotFoundError):
    """The data set is in none of the places searched and could not be downloaded.

    The message lists every place searched, why the download failed, and how to supply the
    files. A FileNotFoundError, so `except FileNotFoundError` and `except OSError` catch it."""
