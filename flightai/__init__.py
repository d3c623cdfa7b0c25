"""flightai: a deterministic onboard autonomy runtime.

ONNX models and Python tasks run under a logical-execution-time cyclic
executive; the same inputs give the same outputs, bit for bit, whatever the
clock or the worker count. This package is the flight side: it imports only
onnxruntime, numpy, pyzmq, msgpack and the standard library, never ``hil``.
"""

from flightai.config import MissionConfig as MissionConfig
from flightai.config import load_mission as load_mission
from flightai.errors import ConfigError as ConfigError
from flightai.errors import FlightaiError as FlightaiError
from flightai.errors import ModelError as ModelError
from flightai.errors import ModelHashError as ModelHashError
from flightai.errors import ScheduleError as ScheduleError
from flightai.runtime import build_executive as build_executive
from flightai.sched.clock import Clock as Clock
from flightai.sched.clock import ExternalClock as ExternalClock
from flightai.sched.clock import FastClock as FastClock
from flightai.sched.clock import WallClock as WallClock
from flightai.sched.executive import Executive as Executive
from flightai.sched.executive import Overrun as Overrun
from flightai.sched.io import InputSource as InputSource
from flightai.sched.io import OutputSink as OutputSink
from flightai.sched.io import Publication as Publication
from flightai.sched.io import Sample as Sample
from flightai.sched.task import Task as Task

__version__ = "0.1.0"

__all__ = [
    "Clock",
    "ConfigError",
    "Executive",
    "ExternalClock",
    "FastClock",
    "FlightaiError",
    "InputSource",
    "MissionConfig",
    "ModelError",
    "ModelHashError",
    "OutputSink",
    "Overrun",
    "Publication",
    "Sample",
    "ScheduleError",
    "Task",
    "WallClock",
    "__version__",
    "build_executive",
    "load_mission",
]
