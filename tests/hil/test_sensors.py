from __future__ import annotations

import numpy as np
import pytest

from flightai.timebase import NS_PER_MS
from hil.ltd1.constants import ACCEL_NOISE_MPS2_RTHZ, CAMERA_READ_NOISE
from hil.ltd1.render import render_camera, shaded_pyramid
from hil.ltd1.sensors import Accelerometer, Altimeter, Camera, TouchdownSensor
from hil.ltd1.terrain import Terrain


def test_accelerometer_bias_and_noise_density() -> None:
    bias = (0.01, -0.02, 0.005)
    imu = Accelerometer(bias, np.random.default_rng(1))
    period_ns = 10 * NS_PER_MS
    samples = np.array([imu.sample(k * period_ns, (0.0, 0.0, 0.5 * k))
                        for k in range(20001)])
    assert samples.dtype == np.float64
    np.testing.assert_array_equal(samples[0], [0.0, 0.0, 0.0])
    steps = np.diff(samples, axis=0) - [0.0, 0.0, 0.5]
    np.testing.assert_allclose(steps.mean(axis=0), np.array(bias) * 0.01, atol=3e-6)
    sigma = ACCEL_NOISE_MPS2_RTHZ * np.sqrt(0.01)
    np.testing.assert_allclose(steps.std(axis=0), sigma, rtol=0.03)


def test_altimeter_sigma_and_range_limit() -> None:
    alt = Altimeter(np.random.default_rng(2))
    near = np.array([alt.sample(40.0) for _ in range(4000)])
    far = np.array([alt.sample(2000.0) for _ in range(4000)])
    assert near.dtype == np.float32
    assert near.shape == (4000, 1)
    assert float(near.std()) == pytest.approx(0.5, rel=0.05)
    assert float(far.std()) == pytest.approx(10.0, rel=0.05)
    assert float(far.mean()) == pytest.approx(2000.0, abs=0.5)
    assert alt.sample(3000.5) is None


def test_camera_gain_and_read_noise(small_terrain: Terrain) -> None:
    pyramid = shaded_pyramid(small_terrain, 22.0, 60.0)
    clean = render_camera(pyramid, 0.0, 0.0, 300.0)
    camera = Camera(pyramid, 1.1, np.random.default_rng(3))
    one = camera.sample(0.0, 0.0, 300.0)
    two = camera.sample(0.0, 0.0, 300.0)
    assert one.dtype == np.float32
    assert one.shape == (256, 256)
    assert float((one - two).std()) == pytest.approx(CAMERA_READ_NOISE * np.sqrt(2.0), rel=0.02)
    assert float((one - 1.1 * clean).mean()) == pytest.approx(0.0, abs=1e-3)
    # On the ground the camera still sees, from its mounting height.
    assert np.isfinite(camera.sample(0.0, 0.0, -0.2)).all()


def test_touchdown_discrete_latches() -> None:
    td = TouchdownSensor()
    values = [int(td.sample(agl)[0]) for agl in (5.0, 0.11, 0.1, 0.5, 0.0)]
    assert values == [0, 0, 1, 1, 1]
    assert td.sample(1.0).dtype == np.uint8
