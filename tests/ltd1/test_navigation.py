"""LTD-1 onboard navigation: map product, correlation TRN, TRN preprocessing, Kalman filter."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.ltd1.onboard import load_onboard

MS = 1_000_000
SCALES = (40.0, 10.0, 4.0)
HALF_EXTENT_M = 1200.0
DEM_SCALE_M = 20.0
SLOPE = (0.02, -0.01)  # the synthetic DEM is the plane h = 0.02·x − 0.01·y


nav = load_onboard("navigation")


# --- a synthetic map and camera with the documented conventions ------------------------------


class Texture:
    """A smooth, seeded relief texture f(x, y): a sum of plane waves (wavelengths 80-600 m)."""

    def __init__(self, seed: int = 3, waves: int = 24) -> None:
        rng = np.random.default_rng(seed)
        wavelength = rng.uniform(80.0, 600.0, waves)
        angle = rng.uniform(0.0, 2 * np.pi, waves)
        self.kx = 2 * np.pi / wavelength * np.cos(angle)
        self.ky = 2 * np.pi / wavelength * np.sin(angle)
        self.phase = rng.uniform(0.0, 2 * np.pi, waves)
        self.amplitude = rng.uniform(0.5, 1.0, waves)

    def grid(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """f on the grid rows ys × columns xs (separable, via cos(a + b))."""
        ax = np.outer(xs, self.kx) + self.phase
        by = np.outer(ys, self.ky)
        return ((np.cos(by) * self.amplitude) @ np.cos(ax).T
                - (np.sin(by) * self.amplitude) @ np.sin(ax).T)


@pytest.fixture(scope="module")
def texture() -> Texture:
    return Texture()


def write_map(path: Path, texture: Texture) -> str:
    """Write the map .npz (keys of docs/ltd1.md); return its SHA-256."""
    arrays: dict[str, np.ndarray] = {"scales": np.array(SCALES)}
    for s in SCALES:
        centres = -HALF_EXTENT_M + (np.arange(int(2 * HALF_EXTENT_M / s)) + 0.5) * s
        arrays[f"img_{s:g}"] = nav.normalise(texture.grid(centres, centres))
        arrays[f"origin_{s:g}"] = np.array([-HALF_EXTENT_M, -HALF_EXTENT_M])
    centres = -HALF_EXTENT_M + (np.arange(int(2 * HALF_EXTENT_M / DEM_SCALE_M)) + 0.5) * DEM_SCALE_M
    arrays["dem"] = (SLOPE[0] * centres[None, :] + SLOPE[1] * centres[:, None]).astype(np.float32)
    arrays["dem_scale"] = np.array(DEM_SCALE_M)
    arrays["dem_origin"] = np.array([-HALF_EXTENT_M, -HALF_EXTENT_M])
    np.savez(path, **arrays)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def map_file(tmp_path_factory: pytest.TempPathFactory, texture: Texture) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("map") / "map.npz"
    return path, write_map(path, texture)


def plane(x: float, y: float) -> float:
    """The synthetic DEM's height (m)."""
    return SLOPE[0] * x + SLOPE[1] * y


def camera_image(texture: Texture, x: float, y: float, agl: float) -> np.ndarray:
    """The nadir image at true position (x, y): pixel (i, j) sees (x + (j+0.5−128)g, ...)."""
    g = 2 * agl / 256
    offsets = (np.arange(256) + 0.5 - 128) * g
    return (1.1 * texture.grid(x + offsets, y + offsets) + 0.3).astype(np.float32)


def smooth_field(seed: int, size: int = 128, width_px: float = 3.0) -> np.ndarray:
    """A periodic smooth random field (Gaussian spectrum), for exact Fourier shifts."""
    rng = np.random.default_rng(seed)
    k = np.fft.fftfreq(size)
    spectrum = np.fft.fft2(rng.normal(size=(size, size)))
    spectrum *= np.exp(-2 * (np.pi * width_px) ** 2 * (k[:, None] ** 2 + k[None, :] ** 2))
    return np.fft.ifft2(spectrum).real


def fourier_shift(field: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """field(i + dy, j + dx), periodic and band-limited."""
    k = np.fft.fftfreq(field.shape[0])
    phase = np.exp(2j * np.pi * (k[:, None] * dy + k[None, :] * dx))
    return np.fft.ifft2(np.fft.fft2(field) * phase).real


# --- map product ------------------------------------------------------------------------------


def test_load_map_refuses_a_wrong_hash(map_file: tuple[Path, str]) -> None:
    path, sha = map_file
    wrong = "0" * 64
    with pytest.raises(ValueError, match=f"{sha}.*{wrong}"):
        nav.load_map(path, wrong)


def test_map_crop_and_dem_follow_the_documented_grid(map_file: tuple[Path, str],
                                                     texture: Texture) -> None:
    onboard = nav.load_map(*map_file)
    assert onboard.scales == SCALES
    x, y = 123.4, -56.7
    offsets = (np.arange(64) + 0.5 - 32) * 10.0
    expected = nav.normalise(texture.grid(x + offsets, y + offsets))
    crop = onboard.crop(10.0, x, y)
    assert crop.dtype == np.float32 and crop.shape == (64, 64)
    assert np.corrcoef(crop.ravel(), expected.ravel())[0, 1] > 0.995
    assert onboard.dem_height(300.0, 200.0) == pytest.approx(0.02 * 300 - 0.01 * 200, abs=1e-3)
    assert onboard.dem_slope(300.0, 200.0, 50.0) == pytest.approx(SLOPE, abs=1e-4)


# --- correlation TRN --------------------------------------------------------------------------


@pytest.mark.parametrize(("dx", "dy"), [(5.0, -3.0), (-7.0, 11.0), (2.3, -4.6), (-0.45, 6.71)])
def test_ncc_recovers_integer_and_subpixel_shifts(dx: float, dy: float) -> None:
    field = smooth_field(seed=11)
    crop = field[32:96, 32:96]
    patch = fourier_shift(field, dx, dy)[32:96, 32:96]
    pair = np.stack([nav.normalise(patch), nav.normalise(crop)]).reshape(1, 2, 64, 64)
    fix = nav.CorrelationTrn().run({"input": pair})["fix"]
    assert fix.dtype == np.float32 and fix.shape == (1, 3)
    assert fix[0, 0] == pytest.approx(dx, abs=0.2)
    assert fix[0, 1] == pytest.approx(dy, abs=0.2)
    assert fix[0, 2] > 0.95


def test_ncc_gives_no_confidence_without_an_image() -> None:
    fix = nav.CorrelationTrn().run({"input": np.zeros((1, 2, 64, 64), dtype=np.float32)})["fix"]
    assert fix[0, 2] == 0.0


def test_ncc_gives_no_confidence_for_a_peak_on_the_search_border() -> None:
    field = smooth_field(seed=12)
    patch = fourier_shift(field, 20.0, 0.0)[32:96, 32:96]  # beyond the ±16 px range
    pair = np.stack([nav.normalise(patch), nav.normalise(field[32:96, 32:96])])
    _, _, confidence = nav.correlate(pair[0], pair[1])
    assert confidence == 0.0 or confidence < 0.5


# --- TRN preprocessing + correlation end to end -----------------------------------------------


def prep_inputs(image: np.ndarray, image_t: int, state: np.ndarray,
                state_t: int) -> dict[str, np.ndarray]:
    return {"image": image, "image_t": np.array([image_t]), "state": state.reshape(1, 12),
            "state_t": np.array([state_t])}


def nav_state(r: tuple[float, float, float], v: tuple[float, float, float],
              agl: float) -> np.ndarray:
    state = np.zeros(12)
    state[0:3], state[3:6], state[9], state[10:12] = r, v, agl, (30.0, 30.0)
    return state


def test_trn_prep_and_correlation_recover_a_known_prior_error(map_file: tuple[Path, str],
                                                              texture: Texture) -> None:
    truth = (37.0, -52.0)
    agl = 800.0  # → 10 m/px, camera GSD 6.25 m/px
    image_t = 5_000 * MS
    v = (20.0, -5.0, -10.0)
    lag = 0.3  # the nav state is 300 ms newer than the exposure; its prior there is (0, 0)
    state = nav_state((v[0] * lag, v[1] * lag, 800.0 + v[2] * lag), v, agl + v[2] * lag)
    prep = nav.TrnPrep(*map_file)
    image = camera_image(texture, *truth, agl)
    out = prep.run(prep_inputs(image, image_t, state, image_t + 300 * MS))
    assert out["input"].dtype == np.float32 and out["input"].shape == (1, 2, 64, 64)
    t_exp, prior_x, prior_y, scale = out["meta"][0]
    assert (t_exp, scale) == (image_t, 10.0)
    assert (prior_x, prior_y) == pytest.approx((0.0, 0.0), abs=1e-9)
    for channel in out["input"][0]:
        assert abs(channel.mean()) < 1e-5 and channel.std() == pytest.approx(1.0, abs=1e-4)
    dx, dy, confidence = nav.CorrelationTrn().run({"input": out["input"]})["fix"][0]
    assert confidence > 0.9
    assert prior_x + dx * scale == pytest.approx(truth[0], abs=2.5)
    assert prior_y + dy * scale == pytest.approx(truth[1], abs=2.5)


def test_trn_prep_gives_zeros_without_a_usable_image(map_file: tuple[Path, str],
                                                     texture: Texture) -> None:
    prep = nav.TrnPrep(*map_file)
    image = camera_image(texture, 0.0, 0.0, 800.0)
    t = 5_000 * MS
    good = nav_state((0.0, 0.0, 800.0), (0.0, 0.0, -10.0), 800.0)
    cases = [
        prep_inputs(image, t, np.zeros(12), t),  # nav not started
        prep_inputs(image, t, nav_state((0.0, 0.0, 100.0), (0.0, 0.0, -2.0), 100.0), t),  # low
        prep_inputs(image, t, good, t + 400 * MS),  # stale
        prep_inputs(np.zeros((256, 256), dtype=np.float32), t, good, t),  # blank
    ]
    for inputs in cases:
        out = prep.run(inputs)
        assert not out["input"].any() and not out["meta"].any()
    assert prep.run(prep_inputs(image, t, good, t))["meta"][0, 3] == 10.0
    assert prep.run(prep_inputs(image, t, good, t + 20 * MS))["meta"][0, 3] == 0.0  # used


# --- navigation filter ------------------------------------------------------------------------


class Flight:
    """Truth and sensors of a constant-specific-force descent over the synthetic DEM.

    Args:
        r0, v0: truth at t = 0.
        force: specific force (m/s²), constant.
        knowledge_error: handover error (r, v).
        bias: accelerometer bias (m/s²).
        noisy: accelerometer white noise (100 µg/√Hz) and altimeter noise.
        seed: the noise seed.
    """

    def __init__(self, r0: tuple[float, ...], v0: tuple[float, ...], force: tuple[float, ...],
                 knowledge_error: tuple[float, ...] = (0.0,) * 6,
                 bias: tuple[float, ...] = (0.0,) * 3, noisy: bool = True, seed: int = 5) -> None:
        self.r, self.v = np.array(r0, dtype=float), np.array(v0, dtype=float)
        self.force, self.bias = np.array(force), np.array(bias)
        self.handover = np.concatenate([self.r, self.v]) + np.array(knowledge_error)
        self.noisy = noisy
        self.rng = np.random.default_rng(seed)
        self.t_ns = 0
        self.next_run_ns = 0
        self.dv = np.zeros(3)
        self.alt, self.alt_t = np.zeros(1, dtype=np.float32), 0
        self._measure_altimeter()
        self.fix: tuple[float, ...] = (0.0, 0.0, 0.0)
        self.fix_t = 0
        self.meta: tuple[float, ...] = (0.0,) * 4

    def advance_to(self, t_ns: int) -> None:
        """Step the truth in 10 ms, accumulating Δv and sampling the altimeter at 10 Hz."""
        while self.t_ns < t_ns:
            dt = 0.01
            accel = self.force + nav.GRAVITY
            self.r += self.v * dt + 0.5 * accel * dt * dt
            self.v += accel * dt
            noise = self.rng.normal(0.0, 100e-6 * 9.80665 * np.sqrt(dt), 3) if self.noisy else 0
            self.dv = self.dv + (self.force + self.bias) * dt + noise
            self.t_ns += 10 * MS
            if self.t_ns % (100 * MS) == 0:
                self._measure_altimeter()

    def _measure_altimeter(self) -> None:
        rng = self.r[2] - plane(self.r[0], self.r[1])
        sigma = max(0.5, 0.005 * rng)
        self.alt = np.array([rng + (self.rng.normal(0.0, sigma) if self.noisy else 0.0)],
                            dtype=np.float32)
        self.alt_t = self.t_ns

    def inputs(self) -> dict[str, np.ndarray]:
        """The filter's inputs now; trn.fix and trn.meta hold their last values."""
        return {
            "handover": self.handover, "handover_t": np.zeros(1, dtype=np.int64),
            "dv": self.dv.copy(), "dv_t": np.array([self.t_ns]),
            "alt": self.alt, "alt_t": np.array([self.alt_t]),
            "fix": np.array([self.fix], dtype=np.float32), "fix_t": np.array([self.fix_t]),
            "meta": np.array([self.meta], dtype=np.float64),
        }


def fly(filt: Any, flight: Flight, until_ns: int, **fix: Any) -> dict[str, np.ndarray]:
    """Run the filter every 20 ms up to ``until_ns``; a ``fix``, ``fix_t``, ``meta`` arrives
    at the last run."""
    out: dict[str, np.ndarray] = {}
    while flight.next_run_ns <= until_ns:
        t = flight.next_run_ns
        flight.advance_to(t)
        if t == until_ns:
            vars(flight).update(fix)
        out = filt.run(flight.inputs())
        flight.next_run_ns += 20 * MS
    return out


def new_filter(map_file: tuple[Path, str], **params: Any) -> Any:
    return nav.NavFilter(*map_file, **params)


def test_filter_outputs_zeros_before_the_handover(map_file: tuple[Path, str]) -> None:
    filt = new_filter(map_file)
    inputs = Flight((0, 0, 1000), (0, 0, -10), (0, 0, 1.62)).inputs()
    inputs["handover"] = np.zeros(6)
    filt.warmup(inputs)
    out = filt.run(inputs)
    assert out["state"].shape == (1, 12) and out["state"].dtype == np.float64
    assert out["rv"].shape == (1, 6) and out["rv"].dtype == np.float32
    assert not out["state"].any() and not out["rv"].any()


def test_filter_converges_on_imu_and_altimeter_and_stays_consistent(
        map_file: tuple[Path, str]) -> None:
    flight = Flight(r0=(-300.0, 100.0, 1500.0), v0=(15.0, -2.0, -30.0), force=(-0.3, 0.05, 1.3),
                    knowledge_error=(60.0, -40.0, 8.0, 0.2, -0.1, 0.3),
                    bias=(0.008, -0.005, 0.009))
    filt = new_filter(map_file)
    for t_s in (5, 10, 15, 20):
        state = fly(filt, flight, t_s * 1000 * MS)["state"][0]
        sigma = np.sqrt(np.diag(filt.covariance))
        error = state[:9] - np.concatenate([flight.r, flight.v, flight.bias])
        assert np.all(np.abs(error) < 3.5 * sigma)
        assert state[9] == pytest.approx(state[2] - plane(state[0], state[1]), abs=1e-3)
        assert state[10:12] == pytest.approx(sigma[:2])
    assert sigma[2] < 3.0 and sigma[5] < 0.2  # vertical: converged from 10 m and 0.3 m/s
    assert abs(state[9] - (flight.r[2] - plane(flight.r[0], flight.r[1]))) < 3 * sigma[2]
    assert 90.0 < sigma[0] < 110.0  # horizontal: dead reckoning, little from the slope


def converged_filter(map_file: tuple[Path, str]) -> tuple[Any, Flight, np.ndarray]:
    """A filter after one accurate late fix: noise-free flight, 20 m/s horizontally."""
    flight = Flight(r0=(-400.0, 50.0, 900.0), v0=(20.0, -8.0, -20.0), force=(0.2, 0.1, 1.62),
                    knowledge_error=(80.0, -60.0, 5.0, 0.0, 0.0, 0.0), noisy=False)
    filt = new_filter(map_file, fix_sigma_px=0.5)
    fly(filt, flight, 2_000 * MS)
    truth_at_exposure = flight.r[:2].copy()
    prior = truth_at_exposure + np.array([13.0, -9.0])
    delta = (truth_at_exposure - prior) / 4.0
    state = fly(filt, flight, 2_300 * MS, fix=(*delta, 0.9), fix_t=2_300 * MS,
                meta=(2_000.0 * MS, *prior, 4.0))["state"][0]
    return filt, flight, state


def test_a_late_fix_is_applied_at_its_exposure_time(map_file: tuple[Path, str]) -> None:
    filt, flight, state = converged_filter(map_file)
    # Applied at arrival, it would be 0.3 s x 21.5 m/s = 6.5 m off.
    assert np.hypot(*(state[:2] - flight.r[:2])) < 0.5
    assert state[10] < 2.5 and state[11] < 2.5
    assert filt.describe()["fixes_accepted"] == "1"


def wild_fix(flight: Flight, t_ns: int, offset: float = 500.0) -> dict[str, Any]:
    """A fix 20 ms old claiming a position ``offset`` m east of the truth."""
    prior = flight.r[:2] + np.array([offset, 0.0])
    return {"fix": (0.0, 0.0, 0.9), "fix_t": t_ns, "meta": ((t_ns - 20 * MS), *prior, 10.0)}


def test_a_wild_fix_is_gated(map_file: tuple[Path, str]) -> None:
    filt, flight, _ = converged_filter(map_file)
    twin, twin_flight = copy.deepcopy(filt), copy.deepcopy(flight)
    t = 2_400 * MS
    gated = fly(filt, flight, t, **wild_fix(flight, t))["state"]
    plain = fly(twin, twin_flight, t)["state"]
    np.testing.assert_array_equal(gated, plain)
    assert filt.describe()["fixes_rejected"] == "1"


def test_low_confidence_and_scale_zero_fixes_are_ignored(map_file: tuple[Path, str]) -> None:
    filt, flight, _ = converged_filter(map_file)
    twin, twin_flight = copy.deepcopy(filt), copy.deepcopy(flight)
    t = 2_400 * MS
    prior = (*flight.r[:2],)
    fly(filt, flight, t, fix=(3.0, 0.0, 0.1), fix_t=t, meta=(t - 20.0 * MS, *prior, 10.0))
    t += 20 * MS
    out = fly(filt, flight, t, fix=(3.0, 0.0, 0.9), fix_t=t, meta=(0.0,) * 4)
    np.testing.assert_array_equal(out["state"], fly(twin, twin_flight, t)["state"])
    assert filt.describe()["fixes_ignored"] == "2"


def test_four_rejections_inflate_the_covariance_and_reacquire(
        map_file: tuple[Path, str]) -> None:
    filt, flight, state = converged_filter(map_file)
    t = 2_300 * MS
    for rejections in (1, 2, 3, 4):
        t += 20 * MS
        state = fly(filt, flight, t, **wild_fix(flight, t, offset=300.0))["state"][0]
        if rejections < 4:
            assert state[10] < 3.0
    assert state[10] >= 150.0 and state[11] >= 150.0
    assert filt.describe()["reacquisitions"] == "1"
    t += 20 * MS
    state = fly(filt, flight, t, **wild_fix(flight, t, offset=300.0))["state"][0]
    assert filt.describe()["fixes_accepted"] == "2"  # the 5th is taken: re-acquired
    assert state[0] - flight.r[0] == pytest.approx(300.0, abs=10.0)
