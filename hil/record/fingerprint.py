"""The platform fingerprint stored in every recording (see :mod:`flightai.fingerprint`).

The flight side owns it (a timing profile made on the board carries it too);
the recorder, replay and comparator use it from here.
"""

from __future__ import annotations

from flightai.fingerprint import BIT_EXACT_FIELDS, bit_exact, fingerprint

__all__ = ["BIT_EXACT_FIELDS", "bit_exact", "fingerprint"]
