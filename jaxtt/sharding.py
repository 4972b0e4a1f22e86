"""Data parallelism on a device mesh: rows split over a mesh axis, parameters replicated.

Every jaxtt fit is a sum over samples — the ALS normal equations and CGLS
products, the DDPM loss of a batch — so it runs data-parallel on JAX's own
machinery: the rows are placed with ``NamedSharding(mesh, P(axis))``, the
parameters with ``NamedSharding(mesh, P())`` (replicated), and the sums are
completed by one all-reduce per reduction (an explicit ``psum`` inside
``jax.shard_map`` for the ALS sweeps, the one XLA's SPMD partitioner inserts
for ``jit``-compiled gradient steps; Xu et al. 2021, "GSPMD"). The same code
runs on the devices of one process, on forced host devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=4``) and on several
processes or hosts after ``jax.distributed.initialize`` — :func:`data_mesh`
then spans the devices of all processes.

A row count that does not divide by the number of devices is padded with zero
rows and a row ``mask`` (1 for data, 0 for padding) that the consumers use to
drop the padding exactly (:func:`shard_rows`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxtt._validation import check_instance, check_sequence

__all__ = ["check_mesh", "data_mesh", "replicate", "shard_rows"]


def data_mesh(devices=None, axis: str = "data") -> Mesh:
    """A one-dimensional mesh named ``axis`` over ``devices`` (default: all devices of all processes).

    Args:
        devices: a sequence of devices, or ``None`` for ``jax.devices()``.
        axis: the mesh axis name the rows are split over.

    Returns:
        The :class:`jax.sharding.Mesh`.

    Raises:
        TypeError: ``axis`` is not a string.
        ValueError: ``devices`` is empty.

    Examples:
        >>> import jax
        >>> mesh = data_mesh()
        >>> mesh.axis_names, mesh.shape["data"] == jax.device_count()
        (('data',), True)
    """
    check_instance(axis, "axis", str)
    devices = jax.devices() if devices is None else list(check_sequence(devices, "devices", "jax devices",
                                                                            nonempty=False))
    for k, device in enumerate(devices):
        if not isinstance(device, jax.Device):
            raise TypeError(f"devices[{k}] must be a jax device (from jax.devices()), got {type(device).__name__}")
    if not devices:
        raise ValueError("devices must hold at least one device")
    return Mesh(np.asarray(devices), (axis,))


def check_mesh(mesh, axis: str, name: str = "mesh") -> int:
    """Validate that ``mesh`` is a :class:`~jax.sharding.Mesh` with an axis ``axis``; return that axis' size.

    Raises:
        TypeError: ``mesh`` is not a ``Mesh`` or ``axis`` not a string.
        ValueError: ``mesh`` has no axis ``axis``.

    Examples:
        >>> check_mesh(data_mesh(), "data") >= 1
        True
    """
    check_instance(mesh, name, Mesh)
    check_instance(axis, "axis", str)
    if axis not in mesh.axis_names:
        raise ValueError(f"{name} has no axis {axis!r} (its axes: {mesh.axis_names}); pass axis=<one of them>")
    return int(mesh.shape[axis])


def _place(array, sharding):
    """``jax.device_put`` that also works across processes (every process passes the same host value)."""
    if jax.process_count() > 1:
        array = np.asarray(array)
    return jax.device_put(array, sharding)


def shard_rows(arrays, mesh: Mesh, axis: str = "data"):
    """Pad the rows (axis 0) of ``arrays`` to a multiple of the mesh axis size and split them over it.

    The ``p = -N mod D`` padding rows (``D`` devices on ``axis``) are zeros;
    the returned ``mask`` (1 for the ``N`` data rows, 0 for padding) lets a
    consumer drop them exactly — a sum ``Σ_s mask_s h(x_s)`` over the padded
    rows equals the sum over the data.

    Args:
        arrays: a sequence of arrays with the same leading length ``N``.
        mesh: the device mesh; axis: its axis to split rows over.

    Returns:
        ``(sharded, mask)``: the padded arrays placed with
        ``NamedSharding(mesh, P(axis))`` (a tuple like ``arrays``) and the
        ``(N + p,)`` mask, placed the same way, in the first array's floating dtype.

    Raises:
        TypeError, ValueError: a bad mesh or axis, or arrays of different lengths.

    Examples:
        >>> import jax.numpy as jnp
        >>> mesh = data_mesh()
        >>> (x,), mask = shard_rows([jnp.ones((5, 2))], mesh)
        >>> x.shape[0] % mesh.size, float((x.sum(axis=1) * mask).sum())  # padding rows dropped by the mask
        (0, 10.0)
    """
    devices = check_mesh(mesh, axis)
    arrays = [a if isinstance(a, np.ndarray) else jnp.asarray(a) for a in arrays]
    if not arrays or len({a.shape[0] for a in arrays}) != 1:
        raise ValueError(f"arrays must share their leading length, got shapes {[a.shape for a in arrays]}")
    n = arrays[0].shape[0]
    pad = -n % devices
    dtype = arrays[0].dtype if jnp.issubdtype(arrays[0].dtype, jnp.floating) else jnp.result_type(float)
    sharding = NamedSharding(mesh, PartitionSpec(axis))
    padded = [_place((np if isinstance(a, np.ndarray) else jnp).pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1)),
                     sharding) for a in arrays]
    mask = _place(np.concatenate([np.ones(n), np.zeros(pad)]).astype(dtype), sharding)
    return tuple(padded), mask


def replicate(tree, mesh: Mesh):
    """Place every array leaf of ``tree`` on all devices of ``mesh`` (``NamedSharding(mesh, P())``).

    Examples:
        >>> import jax.numpy as jnp
        >>> mesh = data_mesh()
        >>> replicate({"w": jnp.ones(3)}, mesh)["w"].sharding.is_fully_replicated
        True
    """
    sharding = NamedSharding(mesh, PartitionSpec())
    return jax.tree_util.tree_map(lambda a: _place(a, sharding) if isinstance(a, jax.Array | np.ndarray) else a,
                                  tree)
