"""Atomic, checksummed checkpoints of pytrees (Equinox leaf serialisation plus a small header).

File layout (all integers little-endian)::

    magic    8 bytes   b"JAXTTCKP"
    version  uint32    format version (1)
    n_meta   uint64    length of the JSON metadata
    n_data   uint64    length of the serialised leaves
    sha256   32 bytes  SHA-256 of metadata followed by the serialised leaves
    metadata n_meta bytes of UTF-8 JSON
    leaves   n_data bytes written by ``equinox.tree_serialise_leaves``

A save writes a temporary file in the target directory, flushes it to disk and renames it over the target
(``os.replace``), so a crash or an error during the save leaves the previous checkpoint untouched. A load checks
the magic, version, lengths and checksum before deserialising, so a truncated or corrupted file is reported
(naming the file) instead of being read.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import tempfile

import equinox as eqx
from jaxtyping import PyTree

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint"]

_MAGIC = b"JAXTTCKP"
_VERSION = 1
_HEADER = struct.Struct("<8sIQQ32s")


class CheckpointError(ValueError):
    """A checkpoint file is truncated, corrupted, of an unknown format, or does not match the expected pytree."""


def save_checkpoint(path: str | os.PathLike, tree: PyTree, metadata: dict | None = None) -> None:
    """Atomically write the array leaves of ``tree`` and a JSON-serialisable ``metadata`` dict to ``path``.

    The leaves are serialised with ``equinox.tree_serialise_leaves`` (arrays and Python scalars; other leaves,
    e.g. functions, are skipped and restored from ``like`` on load). The bytes go to a temporary file in the
    same directory, which is flushed, ``fsync``-ed and renamed over ``path``; on any error the temporary file is
    removed and an existing checkpoint at ``path`` is left as it was.

    Raises:
        TypeError: ``metadata`` is not JSON-serialisable.
        OSError: the file cannot be written; the message names ``path``.
    """
    path = os.fspath(path)
    meta = json.dumps({} if metadata is None else metadata).encode()
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, tree)
    data = buffer.getvalue()
    header = _HEADER.pack(_MAGIC, _VERSION, len(meta), len(data), hashlib.sha256(meta + data).digest())
    directory = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
        with os.fdopen(fd, "wb") as file:
            file.write(header + meta + data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as err:
        raise OSError(err.errno, f"cannot write checkpoint file {path}: {err.strerror or err}") from err
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


def load_checkpoint(path: str | os.PathLike, like: PyTree) -> tuple[PyTree, dict]:
    """Read a checkpoint written by :func:`save_checkpoint`; return ``(tree, metadata)``.

    ``like`` is a pytree of the same structure, shapes and dtypes as the saved one (for example a freshly
    initialised model); its non-array leaves are kept.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: the file is truncated, corrupted (checksum mismatch), of an unknown format or version,
            or its leaves do not match ``like``; the message names the file.
    """
    path = os.fspath(path)
    with open(path, "rb") as file:
        blob = file.read()
    if len(blob) < _HEADER.size:
        raise CheckpointError(f"checkpoint file {path} is truncated: {len(blob)} bytes, shorter than its header")
    magic, version, n_meta, n_data, digest = _HEADER.unpack_from(blob)
    if magic != _MAGIC:
        raise CheckpointError(f"{path} is not a jaxtt checkpoint (bad magic bytes {magic!r})")
    if version != _VERSION:
        raise CheckpointError(f"checkpoint file {path} has format version {version}; this jaxtt reads {_VERSION}")
    body = blob[_HEADER.size :]
    if len(body) != n_meta + n_data:
        raise CheckpointError(
            f"checkpoint file {path} is truncated or has trailing bytes: "
            f"expected {n_meta + n_data} bytes after the header, found {len(body)}"
        )
    if hashlib.sha256(body).digest() != digest:
        raise CheckpointError(f"checkpoint file {path} is corrupted: SHA-256 checksum mismatch")
    metadata = json.loads(body[:n_meta].decode())
    leaves = io.BytesIO(body[n_meta:])
    try:
        tree = eqx.tree_deserialise_leaves(leaves, like)
    except Exception as err:
        raise CheckpointError(f"checkpoint file {path} does not match the expected pytree: {err}") from err
    if leaves.tell() != n_data:
        raise CheckpointError(f"checkpoint file {path} holds more leaves than the expected pytree `like`")
    return tree, metadata
