"""Test configuration.

float64 is switched on for the whole suite; float32 behaviour is tested by
passing float32 inputs explicitly (every jaxtt function keeps the dtype of its
inputs), so both precisions are covered.

Hypothesis runs derandomized (the examples are a function of the test), so a
CI run cannot fail on an example that a local run never drew.
"""

import os
import shutil
import tempfile

import jax
import pytest
from hypothesis import settings

jax.config.update("jax_enable_x64", True)

# One persistent compilation cache per test run, shared by the xdist workers (they inherit the environment):
# the module fixture below drops every module's compiled programs, and programs that later modules compile again
# (samplers, sweeps, losses of the same shapes) are then read back instead of recompiled.
_OWN_CACHE = "JAXTT_TEST_COMPILATION_CACHE" not in os.environ
if _OWN_CACHE:
    os.environ["JAXTT_TEST_COMPILATION_CACHE"] = tempfile.mkdtemp(prefix="jaxtt-test-xla-")
_CACHE = os.environ["JAXTT_TEST_COMPILATION_CACHE"]
jax.config.update("jax_compilation_cache_dir", _CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)


def pytest_unconfigure(config):
    if _OWN_CACHE and not hasattr(config, "workerinput"):
        shutil.rmtree(_CACHE, ignore_errors=True)


settings.register_profile("jaxtt", derandomize=True, deadline=None)
settings.load_profile("jaxtt")


@pytest.fixture(autouse=True, scope="module")
def _drop_compiled_programs():
    """Free each module's compiled XLA programs when it ends. Every executable holds memory mappings, and a
    worker that keeps all of the suite's (thousands of shapes) reaches the kernel's limit of 65,530 maps
    (``vm.max_map_count``), where XLA's compiler segfaults."""
    yield
    jax.clear_caches()
