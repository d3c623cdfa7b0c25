"""Reports of a recording: an HTML page with figures and the verdict, and JUnit XML for CI.

:mod:`.plots` draws the figures (matplotlib, Agg), :mod:`.html` writes the
self-contained page, :mod:`.junit` the XML, :mod:`.command` is
``flightai hil report``. The checks themselves are :mod:`hil.verdict`.
Nothing is imported here, so ``flightai hil`` does not load matplotlib until a
report is drawn.
"""
