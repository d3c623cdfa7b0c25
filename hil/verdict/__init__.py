"""Verdicts: declarative checks over a recording's streams, each passing or failing with a reason.

:mod:`.spec` reads and validates a TOML verdict file (``models/ltd1/verdicts.toml``),
:mod:`.streams` turns a recording into the time series checks read, :mod:`.checks`
judges them; :mod:`.truth` is the ground-truth channel a simulated run records.
The language is in ``docs/hil.md`` (Verdicts and reports). No matplotlib here
(``hil.report`` draws).
"""

from hil.verdict.checks import CheckResult, evaluate
from hil.verdict.spec import Check, VerdictFileError, VerdictSet, load_verdicts, parse_verdicts
from hil.verdict.streams import Streams

__all__ = ["Check", "CheckResult", "Streams", "VerdictFileError", "VerdictSet", "evaluate",
           "load_verdicts", "parse_verdicts"]
