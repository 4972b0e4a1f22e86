"""Bad and unusual input across the public API: each case ends in a clear error naming the argument (checked
by type and message) or in a correct result, so none of them can come back."""

import os
import stat

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtt.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


# --- checkpoints -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_checkpoint_respects_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        save_checkpoint(tmp_path / "a.ckpt", {"w": jnp.ones(2)})
        save_checkpoint(tmp_path / "a.ckpt", {"w": jnp.zeros(2)})  # replacing keeps the rule
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "a.ckpt").st_mode) == 0o666 & ~mask


def test_checkpoint_refuses_to_replace_a_read_only_file(tmp_path):
    path = tmp_path / "a.ckpt"
    save_checkpoint(path, {"w": jnp.ones(2)}, {"step": 1})
    os.chmod(path, 0o444)
    before = path.read_bytes()
    with pytest.raises(PermissionError, match=f"{path}.*read-only"):
        save_checkpoint(path, {"w": jnp.zeros(2)}, {"step": 2})
    assert path.read_bytes() == before
    assert not [p for p in os.listdir(tmp_path) if p != "a.ckpt"]  # no temporary file left behind
    tree, meta = load_checkpoint(path, {"w": jnp.zeros(2)})
    assert meta == {"step": 1} and tree["w"].tolist() == [1.0, 1.0]


def test_checkpoint_matches_leaves_by_path_not_position(tmp_path):
    path = tmp_path / "a.ckpt"
    save_checkpoint(path, {"a": jnp.arange(2.0), "b": jnp.arange(3.0)})
    # same number, shapes and order of leaves, other keys: refused with the paths that differ
    with pytest.raises(CheckpointError, match=r"in `like` but not in the file: \['c'\]") as info:
        load_checkpoint(path, {"a": jnp.zeros(2), "c": jnp.zeros(3)})
    assert "['c']" in str(info.value) and "['b']" in str(info.value) and str(path) in str(info.value)
    # same key, another shape: names the path and both shapes
    with pytest.raises(CheckpointError, match=r"\['b'\] is float\w*\[3\] in the file but float\w*\[4\]"):
        load_checkpoint(path, {"a": jnp.zeros(2), "b": jnp.zeros(4)})
    tree, _ = load_checkpoint(path, {"a": jnp.zeros(2), "b": jnp.zeros(3)})
    assert tree["b"].tolist() == [0.0, 1.0, 2.0]
