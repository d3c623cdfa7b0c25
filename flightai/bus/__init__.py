"""The bus: ZeroMQ sockets carrying msgpack headers and raw array frames.

Owns every pyzmq call (exceptions translated in :mod:`.sockets`). It plugs
into the executive only through :class:`~flightai.sched.io.InputSource`,
:class:`~flightai.sched.io.OutputSink`, the external clock and the command
methods; the scheduler knows nothing of it.
"""
