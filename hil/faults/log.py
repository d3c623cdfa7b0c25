"""The applied-fault log: one entry each time a fault acts, recorded with the run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Applied:
    """One application of a fault.

    Attributes:
        t_ns: the frame (tick) instant it was applied at: when the message was
            sent (sensor, transport) or the job's release instant (model).
        fault: the fault's name in the plan.
        kind: its kind (``dropout``, ``nan``, ...).
        target: the signal, topic or task it acted on.
        detail: what exactly (the sample's measurement time, the seq, the mode).
    """

    t_ns: int
    fault: str
    kind: str
    target: str
    detail: str = ""

    def fields(self) -> dict[str, Any]:
        """As the header fields of a recorded ``fault`` message."""
        return {"fault": self.fault, "kind": self.kind, "target": self.target,
                "detail": self.detail}

    @classmethod
    def from_fields(cls, t_ns: int, fields: dict[str, Any]) -> Applied:
        """Back from a recorded ``fault`` message's header fields."""
        return cls(t_ns, str(fields["fault"]), str(fields["kind"]), str(fields["target"]),
                   str(fields.get("detail", "")))
