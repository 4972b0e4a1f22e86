"""Test configuration: float64 is switched on for the whole suite.

Float32 behaviour is tested by passing float32 inputs explicitly; every jaxtt
function keeps the dtype of its inputs, so both precisions are covered.
"""

import jax

jax.config.update("jax_enable_x64", True)
