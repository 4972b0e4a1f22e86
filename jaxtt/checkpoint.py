"""Atomic, checksummed checkpoints of pytrees (Equinox leaf serialisation plus a small header).

File layout (all integers little-endian)::

    magic    8 bytes   b"JAXTTCKP"
    version  uint32    format version (2; version 1 files are still read)
    n_meta   uint64    length of the JSON header
    n_data   uint64    length of the serialised leaves
    sha256   32 bytes  SHA-256 of the JSON header followed by the serialised leaves
    header   n_meta bytes of UTF-8 JSON: {"metadata": ..., "leaves": [[path, shape, dtype], ...]}
    leaves   n_data bytes written by ``equinox.tree_serialise_leaves``

The JSON header lists every saved leaf by its pytree path (``jax.tree_util.keystr``), shape and dtype, so a
load matches leaves by path rather than by position: a pytree with other keys, or with leaves of another
shape or dtype, is refused with the paths that differ. (Version 1 files carry no paths and load by position.)

A save writes a temporary file in the target directory, flushes it to disk and renames it over the target
(``os.replace``), so a crash or an error during the save leaves the previous checkpoint untouched. The new file
gets the permissions an ordinary ``open(path, "w")`` would give it (``0o666`` minus the umask), and an existing
file the user may not write (no write permission bit, or no write access) is refused rather than replaced.
A load checks the magic, version, lengths and checksum before deserialising, so a truncated or corrupted file is
reported (naming the file) instead of being read.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import struct
import tempfile
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from jaxtyping import PyTree

# jax and equinox are imported where they are used, so that reading a checkpoint's metadata
# (checkpoint_metadata, used by the command line to check a model file before anything else) stays fast.

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "checkpoint_metadata"]

_MAGIC = b"JAXTTCKP"
_VERSION = 2
_READS = (1, 2)
_HEADER = struct.Struct("<8sIQQ32s")


class CheckpointError(ValueError):
    """A checkpoint file is truncated, corrupted, of an unknown format, or does not match the expected pytree."""


def _leaf_table(tree) -> list[list]:
    """``[path, shape, dtype]`` of every leaf that ``equinox.tree_serialise_leaves`` writes, in its order."""
    import equinox as eqx
    import jax

    table = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if isinstance(leaf, (bool, int, float, complex)):  # restored as type(like)(value): any scalar fits
            table.append([jax.tree_util.keystr(path), [], "scalar"])
        elif eqx.is_array_like(leaf):
            arr = leaf if isinstance(leaf, jax.Array) else np.asarray(leaf)
            table.append([jax.tree_util.keystr(path), list(arr.shape), str(arr.dtype)])
    return table


def _umask() -> int:
    """The process umask (read by setting and restoring it: the only portable way)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_replaceable(path: str) -> None:
    """Refuse to replace an existing file that is marked read-only or that this user may not write."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(f"cannot write checkpoint file {path}: it is a directory")
    if not (mode & 0o222) or not os.access(path, os.W_OK):
        raise PermissionError(
            f"cannot write checkpoint file {path}: the existing file is read-only (mode {stat.filemode(mode)}); "
            "it was left unchanged; make it writable or choose another path"
        )


def save_checkpoint(path: str | os.PathLike, tree: PyTree, metadata: dict | None = None) -> None:
    """Atomically write the array leaves of ``tree`` and a JSON-serialisable ``metadata`` dict to ``path``.

    The leaves are serialised with ``equinox.tree_serialise_leaves`` (arrays and Python scalars; other leaves,
    e.g. functions, are skipped and restored from ``like`` on load), together with their pytree paths, shapes
    and dtypes. The bytes go to a temporary file in the same directory, which is flushed, ``fsync``-ed, given
    the permissions ``0o666`` minus the umask and renamed over ``path``; on any error the temporary file is
    removed and an existing checkpoint at ``path`` is left as it was.

    Raises:
        TypeError: ``metadata`` is not JSON-serialisable.
        PermissionError: ``path`` exists and is read-only; it is left unchanged.
        OSError: the file cannot be written; the message names ``path``.

    Examples:
        >>> import os, tempfile
        >>> import jax.numpy as jnp
        >>> path = os.path.join(tempfile.mkdtemp(), "model.ckpt")
        >>> save_checkpoint(path, {"w": jnp.arange(3.0), "b": 0.5}, {"step": 10})
        >>> tree, meta = load_checkpoint(path, {"w": jnp.zeros(3), "b": 0.0})
        >>> tree["w"].tolist(), tree["b"], meta
        ([0.0, 1.0, 2.0], 0.5, {'step': 10})
    """
    import equinox as eqx

    path = _check_path(path)
    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict (or None), got {type(metadata).__name__}")
    meta = json.dumps({"metadata": {} if metadata is None else metadata, "leaves": _leaf_table(tree)}).encode()
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, tree)
    data = buffer.getvalue()
    header = _HEADER.pack(_MAGIC, _VERSION, len(meta), len(data), hashlib.sha256(meta + data).digest())
    directory = os.path.dirname(os.path.abspath(path))
    check_replaceable(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
        with os.fdopen(fd, "wb") as file:
            file.write(header + meta + data)
            file.flush()
            os.fchmod(file.fileno(), 0o666 & ~_umask())
            os.fsync(file.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as err:
        raise OSError(err.errno, f"cannot write checkpoint file {path}: {err.strerror or err}") from err
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


def _compare_tables(path: str, saved: list, expected: list) -> None:
    """Raise :class:`CheckpointError` naming the paths at which the saved leaves and ``like``'s differ."""
    saved_by_path = {p: (tuple(s), d) for p, s, d in saved}
    expected_by_path = {p: (tuple(s), d) for p, s, d in expected}
    problems = []
    missing = [p for p in expected_by_path if p not in saved_by_path]
    extra = [p for p in saved_by_path if p not in expected_by_path]
    if missing:
        problems.append(f"paths in `like` but not in the file: {', '.join(missing)}")
    if extra:
        more = " (the file holds more leaves than `like`)" if len(saved) > len(expected) else ""
        problems.append(f"paths in the file but not in `like`{more}: {', '.join(extra)}")
    for p, (shape, dtype) in expected_by_path.items():
        if p in saved_by_path and saved_by_path[p] != (shape, dtype):
            s_shape, s_dtype = saved_by_path[p]
            problems.append(f"{p} is {s_dtype}{list(s_shape)} in the file but {dtype}{list(shape)} in `like`")
    if not problems and [p for p, _, _ in saved] != [p for p, _, _ in expected]:
        problems.append("the same paths in another order")
    if problems:
        raise CheckpointError(f"checkpoint file {path} does not match the expected pytree `like`: "
                              + "; ".join(problems))


def load_checkpoint(path: str | os.PathLike, like: PyTree) -> tuple[PyTree, dict]:
    """Read a checkpoint written by :func:`save_checkpoint`; return ``(tree, metadata)``.

    ``like`` is a pytree with the same leaf paths, shapes and dtypes as the saved one (for example a freshly
    initialised model); its non-array leaves are kept. Leaves are matched by path, so a pytree whose keys
    differ is refused even when it has the same number of leaves.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: the file is truncated, corrupted (checksum mismatch), of an unknown format or version,
            or its leaves do not match ``like`` (the message names the file and the differing paths).

    Examples:
        >>> import os, tempfile
        >>> import jax.numpy as jnp
        >>> path = os.path.join(tempfile.mkdtemp(), "model.ckpt")
        >>> save_checkpoint(path, {"w": jnp.ones(2)})
        >>> load_checkpoint(path, {"v": jnp.ones(2)})
        Traceback (most recent call last):
        ...
        jaxtt.checkpoint.CheckpointError: checkpoint file ... paths in `like` but not in the file: ['v']; paths in the file but not in `like`: ['w']
    """
    import equinox as eqx

    path = _check_path(path)
    version, header, data = _read(path)
    if version == 1:
        metadata = header
    else:
        metadata = header["metadata"]
        _compare_tables(path, header["leaves"], _leaf_table(like))
    leaves = io.BytesIO(data)
    n_data = len(data)
    try:
        tree = eqx.tree_deserialise_leaves(leaves, like)
    except Exception as err:
        raise CheckpointError(f"checkpoint file {path} does not match the expected pytree: {err}") from err
    if leaves.tell() != n_data:
        raise CheckpointError(f"checkpoint file {path} holds more leaves than the expected pytree `like`")
    return tree, metadata


def _check_path(path, name: str = "path") -> str:
    """``path`` (a ``str`` or ``os.PathLike``) as a non-empty string, or a ``TypeError``/``ValueError`` naming
    ``name``.
    """
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"{name} must be a str or os.PathLike file name, got {type(path).__name__} {path!r}"[:300])
    path = os.fspath(path)
    if not isinstance(path, str) or not path:
        raise ValueError(f"{name} must be a non-empty file name, got {path!r}")
    return path


def _read(path: str) -> tuple[int, dict, bytes]:
    """``(version, JSON header, serialised leaves)`` of a checked checkpoint file."""
    with open(path, "rb") as file:
        blob = file.read()
    if len(blob) >= len(_MAGIC) and blob[: len(_MAGIC)] != _MAGIC:
        raise CheckpointError(f"{path} is not a jaxtt checkpoint (bad magic bytes {blob[:len(_MAGIC)]!r})")
    if len(blob) < _HEADER.size:
        raise CheckpointError(f"checkpoint file {path} is truncated: {len(blob)} bytes, shorter than its header")
    magic, version, n_meta, n_data, digest = _HEADER.unpack_from(blob)
    if magic != _MAGIC:
        raise CheckpointError(f"{path} is not a jaxtt checkpoint (bad magic bytes {magic!r})")
    if version not in _READS:
        raise CheckpointError(f"checkpoint file {path} has format version {version}; this jaxtt reads {_READS}")
    body = blob[_HEADER.size :]
    if len(body) != n_meta + n_data:
        raise CheckpointError(
            f"checkpoint file {path} is truncated or has trailing bytes: "
            f"expected {n_meta + n_data} bytes after the header, found {len(body)}"
        )
    if hashlib.sha256(body).digest() != digest:
        raise CheckpointError(f"checkpoint file {path} is corrupted: SHA-256 checksum mismatch")
    return version, json.loads(body[:n_meta].decode()), body[n_meta:]


def checkpoint_metadata(path: str | os.PathLike) -> dict:
    """The ``metadata`` dict of a checkpoint file, checked like :func:`load_checkpoint` but without its leaves.

    Use it to learn what a file holds (e.g. the hyperparameters needed to build ``like``) before loading it.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: the file is truncated, corrupted or not a jaxtt checkpoint.

    Examples:
        >>> import os, tempfile
        >>> import jax.numpy as jnp
        >>> path = os.path.join(tempfile.mkdtemp(), "model.ckpt")
        >>> save_checkpoint(path, {"w": jnp.ones(2)}, {"rank": 4})
        >>> checkpoint_metadata(path)
        {'rank': 4}
    """
    path = _check_path(path)
    version, header, _ = _read(path)
    return header if version == 1 else header["metadata"]
