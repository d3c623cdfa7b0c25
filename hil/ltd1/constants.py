"""LTD-1 mission constants (the LTD-1 note and docs/ltd1.md), SI units, times in integer ns.

Frame: x downrange, y crossrange, z up, origin at the target on the terrain
surface. Sun azimuth is measured from +x towards +y (counter-clockwise seen
from above); elevation from the horizon.
"""

from __future__ import annotations

from typing import Final

from flightai.timebase import NS_PER_MS, NS_PER_S

# Vehicle and engine.
WET_MASS_KG: Final = 1200.0
USABLE_PROPELLANT_KG: Final = 120.0
ISP_S: Final = 311.0
G0_MPS2: Final = 9.80665
GRAVITY_MPS2: Final = (0.0, 0.0, -1.62)
THRUST_MIN_N: Final = 1000.0
THRUST_MAX_N: Final = 5000.0
COMMAND_LATENCY_NS: Final = 20 * NS_PER_MS

# Gates.
HIGH_GATE_R_M: Final = (-1000.0, 0.0, 2000.0)
HIGH_GATE_V_MPS: Final = (15.0, 0.0, -30.0)
LOW_GATE_R_M: Final = (0.0, 0.0, 30.0)
LOW_GATE_V_MPS: Final = (0.0, 0.0, -1.5)

# Run limits.
MAX_MISSION_NS: Final = 200 * NS_PER_S

# Sensors.
IMU_PERIOD_NS: Final = 10 * NS_PER_MS
ACCEL_BIAS_MPS2: Final = 1e-3 * G0_MPS2  # 1 mg per axis, 1 sigma
ACCEL_NOISE_MPS2_RTHZ: Final = 100e-6 * G0_MPS2  # 100 ug/sqrt(Hz)
ALTIMETER_PERIOD_NS: Final = 100 * NS_PER_MS
ALTIMETER_SIGMA_MIN_M: Final = 0.5
ALTIMETER_SIGMA_FRACTION: Final = 0.005
ALTIMETER_MAX_RANGE_M: Final = 3000.0
CAMERA_PERIOD_NS: Final = 200 * NS_PER_MS
CAMERA_SIZE_PX: Final = 256
CAMERA_FOV_DEG: Final = 90.0
CAMERA_READ_NOISE: Final = 0.03
CAMERA_GAIN_RANGE: Final = (0.8, 1.2)
CAMERA_MIN_AGL_M: Final = 1.0  # camera height on the landed vehicle
TOUCHDOWN_PERIOD_NS: Final = 10 * NS_PER_MS
TOUCHDOWN_AGL_M: Final = 0.1

# Sun.
MAP_SUN_ELEVATION_DEG: Final = 30.0
MAP_SUN_AZIMUTH_DEG: Final = 40.0
FLIGHT_SUN_ELEVATION_DEG: Final = 22.0
FLIGHT_SUN_AZIMUTH_DEG: Final = 60.0

# Terrain and map product.
TERRAIN_SEED: Final = 1
TERRAIN_SIZE_PX: Final = 4000
TERRAIN_RESOLUTION_M: Final = 2.0
MAP_SCALES_M: Final = (40, 10, 4)
MAP_HALF_WIDTHS_M: Final = (4000.0, 3000.0, 1500.0)  # per scale, around the target
DEM_SCALE_M: Final = 20

# Monte Carlo dispersions (1 sigma unless stated).
DISP_R0_M: Final = (150.0, 150.0, 20.0)
DISP_V0_MPS: Final = 1.0
DISP_KNOWLEDGE_R_M: Final = (100.0, 100.0, 10.0)
DISP_KNOWLEDGE_V_MPS: Final = 0.3
DISP_MASS_FRACTION: Final = 0.01
DISP_ISP_FRACTION: Final = 0.005
DISP_THRUST_SCALE: Final = 0.01
DISP_MISALIGNMENT_DEG: Final = 0.5
DISP_EXTRA_LATENCY_MAX_NS: Final = 20 * NS_PER_MS  # uniform on [0, max]
DISP_SUN_DEG: Final = (5.0, 10.0)  # elevation, azimuth
DISP_SUN_STRESS_DEG: Final = (15.0, 45.0)
