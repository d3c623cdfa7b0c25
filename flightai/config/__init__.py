"""Mission configuration: strict TOML in, frozen dataclasses out.

Imports nothing from the scheduler or the inference layer.
"""

from flightai.config.loader import load_mission as load_mission
from flightai.config.loader import parse_mission as parse_mission
from flightai.config.schema import ClockKind as ClockKind
from flightai.config.schema import MissionConfig as MissionConfig
from flightai.config.schema import Placement as Placement
from flightai.config.schema import Policy as Policy
