"""The LTD-1 success criteria of one descent, and the record a flown case leaves."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

MAX_VERTICAL_SPEED_MPS = 2.0
MAX_HORIZONTAL_SPEED_MPS = 1.0
MAX_LANDING_ERROR_M = 50.0
GOAL_LANDING_ERROR_M = 20.0
MAX_PROPELLANT_KG = 100.0
MAX_NAV_ERROR_M = 30.0


@dataclass(frozen=True)
class FlightRecord:
    """What one descent did: truth outcome, onboard estimate and runtime counters.

    Attributes:
        seed: the case seed (``hil.ltd1.dispersions.draw_case``).
        touchdown: the vehicle reached the ground (else the run timed out).
        t_touchdown_ns: mission time of touchdown (or of the end of the run).
        vertical_speed_mps: downward speed at touchdown.
        horizontal_speed_mps: horizontal speed at touchdown.
        landing_error_m: horizontal distance from the target at touchdown.
        propellant_kg: propellant burnt.
        early_contact: terrain touched before the touchdown condition (a crash).
        nav_error_m: horizontal error of the onboard estimate at touchdown.
        hard_overruns: deadline misses of the tasks that may not skip.
        overruns: every deadline miss, soft ones included.
        rejects: inputs refused by the runtime, by reason.
        fallback: tasks that ran (or latched to) their classical fallback.
        learned_guidance: the learned guidance was in command to the end of phase A
            (runtime assurance never switched to ZEM/ZEV).
        digest: SHA-256 of everything the runtime published (bit-identity).
    """

    seed: int
    touchdown: bool
    t_touchdown_ns: int
    vertical_speed_mps: float
    horizontal_speed_mps: float
    landing_error_m: float
    propellant_kg: float
    early_contact: bool
    nav_error_m: float
    hard_overruns: int
    overruns: int
    rejects: dict[str, int] = field(default_factory=dict)
    fallback: tuple[str, ...] = ()
    learned_guidance: bool = False
    digest: str = ""

    def failures(self) -> list[str]:
        """Each criterion this descent missed, in words (empty: success)."""
        out = []
        if not self.touchdown:
            out.append("no touchdown")
        if self.vertical_speed_mps > MAX_VERTICAL_SPEED_MPS:
            out.append(f"vertical speed {self.vertical_speed_mps:.2f} m/s > "
                       f"{MAX_VERTICAL_SPEED_MPS}")
        if self.horizontal_speed_mps > MAX_HORIZONTAL_SPEED_MPS:
            out.append(f"horizontal speed {self.horizontal_speed_mps:.2f} m/s > "
                       f"{MAX_HORIZONTAL_SPEED_MPS}")
        if self.landing_error_m > MAX_LANDING_ERROR_M:
            out.append(f"landing error {self.landing_error_m:.1f} m > {MAX_LANDING_ERROR_M}")
        if self.propellant_kg > MAX_PROPELLANT_KG:
            out.append(f"propellant {self.propellant_kg:.1f} kg > {MAX_PROPELLANT_KG}")
        if self.early_contact:
            out.append("terrain contact before touchdown")
        if self.nav_error_m > MAX_NAV_ERROR_M:
            out.append(f"navigation error {self.nav_error_m:.1f} m > {MAX_NAV_ERROR_M}")
        if self.hard_overruns:
            out.append(f"{self.hard_overruns} missed hard deadlines")
        return out

    @property
    def success(self) -> bool:
        """Every LTD-1 criterion met."""
        return not self.failures()

    def to_json(self) -> dict[str, Any]:
        """Plain data, with the verdict."""
        return {**asdict(self), "fallback": list(self.fallback), "success": self.success,
                "failures": self.failures()}

    def summary(self) -> str:
        """A few readable lines for a person."""
        verdict = "SUCCESS" if self.success else "FAILURE: " + "; ".join(self.failures())
        return "\n".join([
            f"  touchdown at t = {self.t_touchdown_ns / 1e9:.2f} s: vertical "
            f"{self.vertical_speed_mps:.2f} m/s, horizontal {self.horizontal_speed_mps:.2f} m/s",
            f"  landing error {self.landing_error_m:.1f} m (navigation error "
            f"{self.nav_error_m:.1f} m), propellant {self.propellant_kg:.1f} kg",
            f"  overruns {self.overruns} (hard {self.hard_overruns}), rejects "
            f"{sum(self.rejects.values())}, guidance "
            + ("learned (G-Net) through phase A" if self.learned_guidance
               else "classical (ZEM/ZEV)")
            + (f", fallback used by {', '.join(self.fallback)}" if self.fallback else ""),
            f"  {verdict}",
        ])
