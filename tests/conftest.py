"""Test configuration.

float64 is switched on for the whole suite; float32 behaviour is tested by
passing float32 inputs explicitly (every jaxtt function keeps the dtype of its
inputs), so both precisions are covered.

Hypothesis runs derandomized (the examples are a function of the test), so a
CI run cannot fail on an example that a local run never drew.
"""

import jax
import pytest
from hypothesis import settings

jax.config.update("jax_enable_x64", True)

settings.register_profile("jaxtt", derandomize=True, deadline=None)
settings.load_profile("jaxtt")


@pytest.fixture(autouse=True, scope="module")
def _drop_compiled_programs():
    """Free each module's compiled XLA programs when it ends. Every executable holds memory mappings, and a
    worker that keeps all of the suite's (thousands of shapes) reaches the kernel's limit of 65,530 maps
    (``vm.max_map_count``), where XLA's compiler segfaults."""
    yield
    jax.clear_caches()
