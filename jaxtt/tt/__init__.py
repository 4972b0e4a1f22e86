"""Tensor-train algebra on cores (Oseledets 2011).

``TensorTrain`` is an Equinox pytree of cores ``(r_{k-1}, n_k, r_k)``; every
operation here is a pure function of it.
"""

from jaxtt.tt.construct import default_float, expand_ranks, feasible_ranks, full, random, rank_one, zeros
from jaxtt.tt.core import TensorTrain
from jaxtt.tt.decompositions import from_dense, orthogonalize, round, truncation_rank
from jaxtt.tt.ops import absorb, add, contract_rank1, get, hadamard, inner, interfaces, norm, scale
from jaxtt.tt import autodiff, riemannian  # noqa: E402  (need the names above)

__all__ = [
    "TensorTrain",
    "riemannian",
    "autodiff",
    "random",
    "zeros",
    "rank_one",
    "full",
    "expand_ranks",
    "default_float",
    "feasible_ranks",
    "from_dense",
    "orthogonalize",
    "round",
    "truncation_rank",
    "add",
    "scale",
    "inner",
    "norm",
    "hadamard",
    "get",
    "absorb",
    "contract_rank1",
    "interfaces",
]
