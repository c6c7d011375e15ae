"""Click parameter types shared by the commands of :mod:`triage.cli` and its siblings.

Kept apart from the commands (and light: click only) so that every module that
defines a command can use them without importing another's commands.
"""

from __future__ import annotations

import math
from typing import Any

import click


class FiniteFloatRange(click.FloatRange):
    """A :class:`click.FloatRange` that also refuses ``nan``, ``inf`` and ``-inf``.

    NaN passes every range check (each comparison with it is false), and ``inf``
    passes every lower bound; neither is a rate, a speed or a number of seconds.
    """

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Parse ``value`` as a float, refuse it unless finite, then check the range."""
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value} is not a finite number", param, ctx)
        return super().convert(number, param, ctx)
