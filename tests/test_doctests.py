"""The Examples sections of the public docstrings run as tests, so they cannot go stale."""

import doctest
import importlib

import pytest

MODULES = [
    "jaxtt._validation",
    "jaxtt._sizes",
    "jaxtt.errors",
    "jaxtt.checkpoint",
    "jaxtt.basis.base",
    "jaxtt.basis.legendre",
    "jaxtt.basis.chebyshev",
    "jaxtt.basis.fourier",
    "jaxtt.basis.bspline",
    "jaxtt.basis.indicator",
    "jaxtt.basis.registry",
    "jaxtt.tt.core",
    "jaxtt.tt.construct",
    "jaxtt.tt.ops",
    "jaxtt.tt.decompositions",
    "jaxtt.tt.riemannian",
    "jaxtt.tt.autodiff",
    "jaxtt.ftt.functional",
    "jaxtt.ftt.denoiser",
    "jaxtt.ftt.whitening",
    "jaxtt.ftt.density",
    "jaxtt.solvers.fit",
    "jaxtt.solvers.problem",
    "jaxtt.solvers.als",
    "jaxtt.solvers.dmrg",
    "jaxtt.solvers.riemannian",
    "jaxtt.solvers.gradient",
    "jaxtt.solvers.continuation",
    "jaxtt.solvers.denoiser",
    "jaxtt.solvers.streaming",
    "jaxtt.sharding",
    "jaxtt.diffusion.schedule",
    "jaxtt.diffusion.forward",
    "jaxtt.diffusion.timesteps",
    "jaxtt.diffusion.parameterization",
    "jaxtt.diffusion.samplers",
    "jaxtt.diffusion.sampling",
    "jaxtt.diffusion.guidance",
    "jaxtt.diffusion.losses",
    "jaxtt.diffusion.targets",
    "jaxtt.diffusion.ddim",
    "jaxtt.diffusion.ddpm",
    "jaxtt.diffusion.langevin",
    "jaxtt.diffusion.ode",
    "jaxtt.diffusion.vlb",
    "jaxtt.nn.batched",
    "jaxtt.nn.embedding",
    "jaxtt.nn.resnet",
    "jaxtt.nn.unet",
    "jaxtt.nn.conv",
    "jaxtt.nn.classifier",
    "jaxtt.nn.vae",
    "jaxtt.latent",
    "jaxtt.latent_digits",
    "jaxtt.data.toy",
    "jaxtt.data.mixture",
    "jaxtt.data.digits",
    "jaxtt.metrics.mmd",
    "jaxtt.metrics.energy",
    "jaxtt.metrics.frechet",
    "jaxtt.metrics.sliced_wasserstein",
    "jaxtt.metrics.eps_error",
    "jaxtt.train",
    "jaxtt.diffusion.flow_matching",
    "jaxtt.distill.teacher",
    "jaxtt.distill.progressive",
    "jaxtt.distill.consistency",
    "jaxtt.distill.compression",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    tests = [t for t in doctest.DocTestFinder().find(module, name) if t.examples]
    assert tests, f"{name} has no docstring examples"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = []
    for test in tests:
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
