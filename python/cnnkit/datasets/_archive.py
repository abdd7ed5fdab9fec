"""Reads and unpacks data set archives (.tar.gz) without trusting the names inside them.

A tar member can be named '../../.bashrc' or '/etc/passwd', or be a link pointing out of the
folder; a naive extractall writes wherever it says. Here only regular files directly under one
expected top-level folder are ever read or written, and any member whose name would escape the
destination makes the whole archive refused.
"""
import os
import posixpath
import shutil
import tarfile
import tempfile


def _checked_name(archive, member):
    """The member's normalised relative name; ValueError if it is absolute or climbs out."""
    name = posixpath.normpath(member.name)
    if member.name.startswith(("/", "\\")) or os.path.isabs(name) or name == ".." or name.startswith("../"):
        raise ValueError(f"{archive}: refusing member {member.name!r}, whose path leaves the archive's folder")
    return name


def regular_files(tar, archive, folder):
    """Yields (file name, member) for the regular files directly inside `folder` in an open tar,
    in archive order. Links, devices and nested folders are skipped; escaping names refuse."""
    for member in tar:
        name = _checked_name(archive, member)
        parent, base = posixpath.split(name)
        if member.isfile() and parent == folder and base:
            yield base, member


def extract_folder(archive, folder, destination):
    """Extracts the regular files of `folder` inside the .tar.gz `archive` to destination/folder.

    The files are written to a temporary sibling folder first and renamed into place, so an
    interrupted extraction never leaves a half-filled `folder` that would look complete."""
    target = os.path.join(destination, folder)
    staging = tempfile.mkdtemp(prefix=f".{folder}.", dir=destination)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for base, member in regular_files(tar, archive, folder):
                with tar.extractfile(member) as source, open(os.path.join(staging, base), "wb") as out:
                    shutil.copyfileobj(source, out)
        try:
            os.replace(staging, target)
        except OSError:
            if not os.path.isdir(target):
                raise
            shutil.rmtree(staging)  # another process extracted it first: keep theirs
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
