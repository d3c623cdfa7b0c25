"""Seeded fault injection for the HIL bench: plans, sensor/transport/model faults, records.

A :class:`FaultPlan` (TOML, :func:`load_plan`) lists faults; an :class:`Injector`
applies the sensor and transport ones to what a flight-software stub sends;
:func:`model_injections` expands the model ones to the jobs the runtime is given;
:func:`fly_faulted` flies a plan in-process; :mod:`hil.faults.record` keeps plan and
applications in a recording so a replay reproduces them. Ground side: the flight
runtime only ever sees a list of jobs (``flightai.inject``).
"""

from hil.faults.flight import FaultedFlight as FaultedFlight
from hil.faults.flight import fly_faulted as fly_faulted
from hil.faults.injector import Injector as Injector
from hil.faults.log import Applied as Applied
from hil.faults.models import model_injections as model_injections
from hil.faults.plan import Fault as Fault
from hil.faults.plan import FaultPlan as FaultPlan
from hil.faults.plan import Kind as Kind
from hil.faults.plan import load_plan as load_plan
from hil.faults.plan import parse_plan as parse_plan
from hil.faults.record import recorded_injections as recorded_injections
from hil.faults.record import recorded_log as recorded_log
from hil.faults.record import recorded_plan as recorded_plan

__all__ = ["Applied", "Fault", "FaultPlan", "FaultedFlight", "Injector", "Kind", "fly_faulted",
           "load_plan", "model_injections", "parse_plan", "recorded_injections", "recorded_log",
           "recorded_plan"]
