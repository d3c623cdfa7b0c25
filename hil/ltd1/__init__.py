"""LTD-1, the reference mission: lunar terminal descent with terrain-relative navigation.

Truth dynamics, terrain, sensors and dispersions, and the flight-software stub
that flies them against a runtime (see ``docs/ltd1.md``).
"""
