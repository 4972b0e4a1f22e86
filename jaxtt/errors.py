"""The exception every jaxtt fitting routine raises when its arithmetic breaks down."""

from __future__ import annotations

__all__ = ["NumericalError"]


class NumericalError(FloatingPointError, ValueError):
    """A fit produced NaN or infinity: names where it happened and what to try.

    Raised by :func:`jaxtt.solvers.fit` (every solver), :func:`jaxtt.solvers.fit_denoiser`
    and :func:`jaxtt.train.fit`. It derives from ``FloatingPointError`` (the
    arithmetic failed) and from ``ValueError`` (the usual cause is the input:
    data scaling, a missing ridge term, a step size too large).

    Attributes:
        step: the step (sweep, iteration) of the fit at which it happened, if known.
        core: the TT core whose local problem broke down, if known.
        remedy: what usually fixes it.

    Examples:
        >>> err = NumericalError("non-finite local solution", step=3, core=1, remedy="increase reg")
        >>> str(err)
        'non-finite local solution at step 3, core 1; increase reg'
        >>> isinstance(err, ValueError) and isinstance(err, FloatingPointError)
        True
    """

    def __init__(self, what: str, *, step: int | None = None, core: int | None = None, remedy: str = ""):
        self.what, self.step, self.core, self.remedy = what, step, core, remedy
        where = ", ".join(f"{name} {value}" for name, value in (("step", step), ("core", core)) if value is not None)
        super().__init__(what + (f" at {where}" if where else "") + (f"; {remedy}" if remedy else ""))

    def at_step(self, step: int) -> NumericalError:
        """The same error, located at ``step`` of the enclosing fit."""
        return NumericalError(self.what, step=step, core=self.core, remedy=self.remedy)
