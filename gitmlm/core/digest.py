"""The one artifact digest: `sha256:<hex>` of a file's content.

A Git LFS pointer stands for its object, so a pointer's digest is the oid it names (LFS oids are
the sha256 of the content). Run records hash the working file (smudged content), while the
registry and the checkpoint hooks read blobs from git (pointers): both must agree, so every one
of them calls this module.
"""

from __future__ import annotations

import hashlib
import os
import re

PREFIX = "sha256:"
LFS_HEADER = b"version https://git-lfs.github.com/spec/v1"
LFS_POINTER_MAX = 1024
"""LFS pointers are well under 200 bytes; git-lfs itself never treats larger files as pointers."""
_OID = re.compile(rb"^oid sha256:([0-9a-f]{64})$", re.M)
_CHUNK = 1 << 20


def lfs_oid(data: bytes) -> str | None:
    """The content digest a Git LFS pointer names, or None when `data` is not a pointer."""
    if len(data) > LFS_POINTER_MAX or not data.startswith(LFS_HEADER):
        return None
    m = _OID.search(data)
    return PREFIX + m.group(1).decode() if m else None


def of_bytes(data: bytes) -> str:
    return lfs_oid(data) or PREFIX + hashlib.sha256(data).hexdigest()


def of_file(path: str | os.PathLike[str]) -> str:
    """Streams the file; a small file that is an LFS pointer (not smudged) gives its oid."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        head = fh.read(LFS_POINTER_MAX + 1)
        oid = lfs_oid(head)
        if oid is not None:
            return oid
        h.update(head)
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return PREFIX + h.hexdigest()
