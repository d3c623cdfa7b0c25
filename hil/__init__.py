"""flightai's ground and bench side: simulator, flight-software stub, HIL tools.

``hil`` imports ``flightai``; ``flightai`` never imports ``hil``.
"""
