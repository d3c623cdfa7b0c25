"""Foxglove views of bus messages: images, pose, trajectory, plots and logs.

A recording keeps every bus message byte for byte (``msgpack``), which Foxglove
cannot draw. :class:`ViewMaker` decodes a wire message and logs, on channels of
a :class:`foxglove.Context` under ``/view/``, the well-known Foxglove messages
its signals map to; the recorder's context writes them to the MCAP file, the
live view's serves them over a WebSocket. The mapping is generic, driven by each
array's dtype and shape, and refined per signal by a :class:`SignalView` table
(:data:`LTD1_VIEWS` for the reference mission):

* an image-like array (last two dims at least :data:`MIN_IMAGE_SIDE`) is a
  ``foxglove.RawImage`` per image along its leading dims: ``mono8``, ``mono16``
  or ``32FC1`` (the wire bytes as they are), or ``mono8`` scaled from a given
  range or from each image's minimum to its maximum;
* a signal with a ``position`` is a ``foxglove.PoseInFrame``, a
  ``foxglove.FrameTransform`` (``/view/tf``) and a trajectory line
  (``foxglove.SceneUpdate``) in the world frame;
* any other numeric array of at most :data:`MAX_PLOT_ELEMENTS` elements is a
  JSON message (JSON schema) that the Plot panel reads: ``t_s`` (mission
  time), named fields or a ``value`` array (non-finite values as null);
* ``health`` is a JSON message (its schema from the first one), ``event`` a
  ``foxglove.Log``.

Timestamps are the wall time the message was received (the recording's
``log_time``), so every panel follows Foxglove's timeline; mission time is the
``t_s`` field of the plots.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from foxglove import Context, Schema
from foxglove._foxglove_py import BaseChannel
from foxglove.channels import (
    FrameTransformChannel,
    LogChannel,
    PoseInFrameChannel,
    RawImageChannel,
    SceneUpdateChannel,
)
from foxglove.messages import (
    Color,
    FrameTransform,
    LinePrimitive,
    LinePrimitiveLineType,
    Log,
    LogLevel,
    Point3,
    Pose,
    PoseInFrame,
    Quaternion,
    RawImage,
    SceneEntity,
    SceneUpdate,
    SpherePrimitive,
    Timestamp,
    Vector3,
)

from flightai.bus.inbound import TICK_TOPIC
from flightai.bus.outbound import EVENT_TOPIC, FRAME_TOPIC, HEALTH_TOPIC, OUTPUT_PREFIX
from flightai.bus.wire import MAX_OUTBOUND_HEADER_BYTES, Message, WireError, decode

VIEW_PREFIX = "/view"
TF_TOPIC = f"{VIEW_PREFIX}/tf"
HEALTH_VIEW = f"{VIEW_PREFIX}/health"
EVENT_VIEW = f"{VIEW_PREFIX}/events"
WORLD_FRAME = "world"
"""The frame poses and trajectories are drawn in (LTD-1: the landing frame, z up)."""
MIN_IMAGE_SIDE = 16
MAX_PLOT_ELEMENTS = 64
TRAJECTORY_POINT_NS = 100_000_000
"""Mission time between two points of a trajectory line."""
TRAJECTORY_PERIOD_NS = 500_000_000
"""Mission time between two trajectory messages (each holds the whole line so far)."""
_IDENTITY = Quaternion(x=0.0, y=0.0, z=0.0, w=1.0)
_LEVELS = {"INFO": LogLevel.Info, "WARNING": LogLevel.Warning, "ERROR": LogLevel.Error}
_NO_VIEWS = frozenset({TICK_TOPIC, FRAME_TOPIC})


@dataclass(frozen=True)
class SignalView:
    """How one signal is shown, beyond what its dtype and shape say.

    Attributes:
        fields: plot field names of the flattened elements (used when the count matches).
        position: indices of x, y, z (m, world frame) in the flattened value: the
            signal also gets a pose, a transform and a trajectory.
        images: labels of the images along the leading dims (used when the count matches).
        image_range: pixel values mapped to 0 and 255 of a ``mono8`` image (clipped); a
            quarter of the bytes of ``32FC1`` and drawn by every Foxglove image panel.
        normalise: images scaled from their own minimum to their maximum into ``mono8``
            (for zero-mean data such as a network input).

    Without ``image_range`` or ``normalise``, float32 images are ``32FC1``, bit for bit.
    """

    fields: tuple[str, ...] = ()
    position: tuple[int, int, int] | None = None
    images: tuple[str, ...] = ()
    image_range: tuple[float, float] | None = None
    normalise: bool = False


_XYZ = ("x", "y", "z")
_RV = ("r_x", "r_y", "r_z", "v_x", "v_y", "v_z")
LTD1_VIEWS: Mapping[str, SignalView] = {
    "nav.handover": SignalView(fields=_RV),
    "imu.dv": SignalView(fields=_XYZ),
    "altimeter.range": SignalView(fields=("range",)),
    "touchdown": SignalView(fields=("touchdown",)),
    "camera.image": SignalView(image_range=(0.0, 1.0)),
    "nav.state": SignalView(fields=(*_RV, "bias_x", "bias_y", "bias_z", "agl", "sigma_x",
                                    "sigma_y"), position=(0, 1, 2)),
    "nav.rv": SignalView(fields=_RV),
    "guidance.accel_cmd": SignalView(fields=_XYZ),
    "thrust.cmd": SignalView(fields=_XYZ),
    "rta.status": SignalView(fields=("learned", "deviation", "phase")),
    "trn.input": SignalView(images=("patch", "map"), normalise=True),
    "trn.meta": SignalView(fields=("t_exposure_ns", "prior_x", "prior_y", "scale")),
    "trn.fix": SignalView(fields=("dx_px", "dy_px", "confidence")),
    "truth.state.r_m": SignalView(fields=_XYZ, position=(0, 1, 2)),
    "truth.state.v_mps": SignalView(fields=_XYZ),
    "truth.touchdown.r_m": SignalView(fields=_XYZ),
}
"""The LTD-1 signals (``docs/ltd1.md``; ``truth.*``: ``hil.verdict.truth``): plot names, the
navigation and true positions, camera and TRN images."""


def as_bytes(frame: Any) -> bytes:
    """A frame as bytes (``encode`` hands array frames as numpy arrays)."""
    if isinstance(frame, np.ndarray):
        return frame.tobytes()
    return bytes(frame)


def view_topic(signal: str, *parts: str) -> str:
    """``/view/nav/state/pose`` for ``nav.state``, ``pose``: no dots, which plot paths split on."""
    return "/".join((VIEW_PREFIX, *signal.split("."), *parts))


def timestamp(wall_ns: int) -> Timestamp:
    """A Foxglove timestamp of nanoseconds since the epoch."""
    return Timestamp(wall_ns // 1_000_000_000, wall_ns % 1_000_000_000)


def json_value(value: Any) -> Any:
    """``value`` with what JSON cannot hold made safe: non-finite floats as None, bytes as hex."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    return value


def json_schema_of(value: Any, title: str | None = None) -> dict[str, Any]:
    """A JSON schema that ``value`` (made safe by :func:`json_value`) validates against."""
    schema: dict[str, Any]
    if isinstance(value, bool):
        schema = {"type": "boolean"}
    elif isinstance(value, int):
        schema = {"type": "integer"}
    elif isinstance(value, float) or value is None:
        schema = {"type": ["number", "null"]}
    elif isinstance(value, str):
        schema = {"type": "string"}
    elif isinstance(value, dict):
        schema = {"type": "object",
                  "properties": {k: json_schema_of(v) for k, v in value.items()}}
    elif isinstance(value, list):
        schema = {"type": "array", "items": json_schema_of(value[0]) if value else {}}
    else:
        schema = {}
    if title is not None:
        schema = {"title": title, **schema}
    return schema


def wire_json(message: Message, max_elements: int = MAX_PLOT_ELEMENTS) -> dict[str, Any]:
    """A decoded wire message as JSON: header fields, arrays' dtype and shape (values if small)."""
    arrays: dict[str, Any] = {}
    for name, array in message.arrays:
        entry: dict[str, Any] = {"dtype": array.dtype.name, "shape": list(array.shape)}
        if array.size <= max_elements:
            entry["value"] = json_value(array.tolist())
        arrays[name] = entry
    return {"topic": message.topic, "seq": message.seq, "t_ns": message.t_ns,
            "t_s": message.t_ns / 1e9, **json_value(dict(message.fields)), "arrays": arrays}


class ViewMaker:
    """Logs the Foxglove views of wire messages on a context's ``/view/...`` channels.

    Args:
        context: where the channels are made (an MCAP writer's or a WebSocket server's).
        signals: per-signal refinements (:class:`SignalView`); other signals get the
            generic views of their dtype and shape.
        world_frame: the frame poses and trajectories are drawn in.

    Not thread-safe: one thread logs (the recorder's writer thread, the live view's loop).
    """

    def __init__(self, context: Context, signals: Mapping[str, SignalView] = LTD1_VIEWS,
                 world_frame: str = WORLD_FRAME) -> None:
        self._context = context
        self._signals = signals
        self._world = world_frame
        self._views: dict[tuple[str, np.dtype[Any], tuple[int, ...]], list[_View]] = {}
        self._viewed: set[str] = set()  # signals with views: one dtype and shape each
        self._health: _JsonView | None = None
        self._events: LogChannel | None = None
        self._tf: FrameTransformChannel | None = None

    @staticmethod
    def wants(topic: str) -> bool:
        """False for the topics that have no view (ticks and frame marks)."""
        return topic not in _NO_VIEWS

    def log(self, frames: Sequence[Any], log_time_ns: int) -> int:
        """Log the views of one multipart message (topic frame first); returns how many.

        A message the wire decoder refuses has no view.
        """
        try:
            message = decode([f if type(f) is bytes else as_bytes(f) for f in frames],
                             max_message_bytes=1 << 30,
                             max_header_bytes=MAX_OUTBOUND_HEADER_BYTES)
        except WireError:
            return 0
        return self.log_message(message, log_time_ns)

    def log_message(self, message: Message, log_time_ns: int) -> int:
        """Log the views of one decoded message; returns how many."""
        if not self.wants(message.topic):
            return 0
        stamp = timestamp(log_time_ns)
        logged = 0
        if message.topic == HEALTH_TOPIC:
            logged += self._log_health(message, log_time_ns)
        elif message.topic == EVENT_TOPIC:
            logged += self._log_event(message, stamp, log_time_ns)
        arrays = message.arrays
        for name, array in arrays:
            # outputs name each array after its signal; a sensor sample's topic is its signal
            if message.topic.startswith(OUTPUT_PREFIX):
                signal = name
            else:
                signal = message.topic if len(arrays) == 1 else f"{message.topic}.{name}"
            key = (signal, array.dtype, array.shape)
            views = self._views.get(key)
            if views is None:
                if signal in self._viewed:  # another dtype or shape (a corrupt sample): no view
                    continue
                self._viewed.add(signal)
                views = self._views[key] = self._make(signal, array)
            for view in views:
                logged += view.log(message, array, stamp, log_time_ns)
        return logged

    def _make(self, signal: str, array: npt.NDArray[Any]) -> list[_View]:
        spec = self._signals.get(signal, SignalView())
        views: list[_View] = []
        if array.dtype.kind not in "biuf":
            return views
        if array.ndim >= 2 and min(array.shape[-2:]) >= MIN_IMAGE_SIDE:
            views.append(_ImageView(self._context, signal, spec, array))
        elif array.size <= MAX_PLOT_ELEMENTS:
            views.append(_PlotView(self._context, signal, spec, array))
            if spec.position is not None and max(spec.position) < array.size:
                if self._tf is None:
                    self._tf = FrameTransformChannel(TF_TOPIC, context=self._context)
                views.append(_PoseView(self._context, self._tf, signal, spec.position,
                                       self._world))
        return views

    def _log_health(self, message: Message, log_time_ns: int) -> int:
        health = message.fields.get("health")
        if not isinstance(health, dict):
            return 0
        value = {"t_s": message.t_ns / 1e9, **json_value(health)}
        if self._health is None:
            self._health = _JsonView(self._context, HEALTH_VIEW,
                                     json_schema_of(value, "flightai.Health"))
        self._health.log(value, log_time_ns)
        return 1

    def _log_event(self, message: Message, stamp: Timestamp, log_time_ns: int) -> int:
        fields = message.fields
        if self._events is None:
            self._events = LogChannel(EVENT_VIEW, context=self._context)
        task = str(fields.get("task", ""))
        self._events.log(Log(timestamp=stamp,
                             level=_LEVELS.get(str(fields.get("severity")), LogLevel.Unknown),
                             message=f"{fields.get('kind', '')}: {fields.get('detail', '')}",
                             name=task or "runtime"), log_time=log_time_ns)
        return 1


class _View:
    """One view of one signal."""

    def log(self, message: Message, array: npt.NDArray[Any], stamp: Timestamp,
            log_time_ns: int) -> int:
        """Log the view of ``array`` (from ``message``); returns the messages logged."""
        raise NotImplementedError


def json_channel(context: Context, topic: str, schema: dict[str, Any]) -> BaseChannel:
    """A JSON channel on ``context`` whose schema is ``schema`` (named by its ``title``).

    Made on the context directly: ``foxglove.Channel`` would also keep it in a
    process-wide registry for ever, one more per recording.
    """
    return context._create_channel(topic, message_encoding="json", schema=Schema(
        name=schema.get("title", ""), encoding="jsonschema", data=json.dumps(schema).encode()))


class _JsonView:
    """A JSON channel with its JSON schema."""

    def __init__(self, context: Context, topic: str, schema: dict[str, Any]) -> None:
        self._log = json_channel(context, topic, schema).log

    def log(self, value: Mapping[str, Any], log_time_ns: int) -> None:
        self._log(json.dumps(value, allow_nan=False).encode(), log_time_ns)


class _PlotView(_View):
    """Small numeric arrays for the Plot panel: ``t_s``, ``status`` and named elements."""

    def __init__(self, context: Context, signal: str, spec: SignalView,
                 array: npt.NDArray[Any]) -> None:
        self.names = spec.fields if len(spec.fields) == array.size else None
        self.floats = array.dtype.kind == "f"
        element = {"type": ["number", "null"]} if self.floats else {"type": "integer"}
        properties: dict[str, Any] = {"t_s": {"type": "number"}, "t_ns": {"type": "integer"},
                                      "status": {"type": "string"}}
        if self.names is not None:
            properties.update({name: element for name in self.names})
            required = ["t_s", "t_ns", *self.names]
        else:
            properties["value"] = {"type": "array", "items": element,
                                   "minItems": array.size, "maxItems": array.size}
            required = ["t_s", "t_ns", "value"]
        self._log = json_channel(context, view_topic(signal), {
            "title": f"flightai.{signal}", "type": "object", "properties": properties,
            "required": required}).log
        # the JSON text from a template (3x json.dumps): str() of an int and of a finite
        # float is JSON; t_s, t_ns, the status part, then the elements
        if self.names is not None:
            body = ",".join(f"{_braced(json.dumps(name))}:{{}}" for name in self.names)
        else:
            body = '"value":[' + ",".join(["{}"] * array.size) + "]"
        self.template = '{{"t_s":{},"t_ns":{}{},' + body + "}}"
        self.bools = array.dtype.kind == "b"
        self.statuses: dict[str, str] = {}

    def log(self, message: Message, array: npt.NDArray[Any], stamp: Timestamp,
            log_time_ns: int) -> int:
        values = array.reshape(-1).tolist()
        if self.floats:
            if not math.isfinite(sum(values)):  # one NaN or infinity (or an overflow)
                values = [v if math.isfinite(v) else "null" for v in values]
        elif self.bools:
            values = [int(v) for v in values]
        status = message.fields.get("status")
        part = ""
        if isinstance(status, str):
            part = self.statuses.get(status) or self.statuses.setdefault(
                status, f',"status":{json.dumps(status)}')
        self._log(self.template.format(message.t_ns / 1e9, message.t_ns, part,
                                       *values).encode(), log_time_ns)
        return 1


def _braced(text: str) -> str:
    """``text`` safe inside a ``str.format`` template."""
    return text.replace("{", "{{").replace("}", "}}")


class _ImageView(_View):
    """Each image along the leading dims as a ``foxglove.RawImage``."""

    def __init__(self, context: Context, signal: str, spec: SignalView,
                 array: npt.NDArray[Any]) -> None:
        count = math.prod(array.shape[:-2])
        if len(spec.images) == count:
            topics = [view_topic(signal, label) for label in spec.images]
        elif count == 1:
            topics = [view_topic(signal)]
        else:
            topics = [view_topic(signal, str(i)) for i in range(count)]
        self.channels = [RawImageChannel(topic, context=context) for topic in topics]
        self.frame_id = signal
        self.spec = spec

    def log(self, message: Message, array: npt.NDArray[Any], stamp: Timestamp,
            log_time_ns: int) -> int:
        height, width = array.shape[-2:]
        planes = array.reshape(-1, height, width)
        for channel, plane in zip(self.channels, planes, strict=True):
            encoding, step, data = image_bytes(plane, self.spec.image_range,
                                               self.spec.normalise)
            channel.log(RawImage(timestamp=stamp, frame_id=self.frame_id, width=width,
                                 height=height, encoding=encoding, step=step, data=data),
                        log_time=log_time_ns)
        return len(self.channels)


def image_bytes(plane: npt.NDArray[Any], value_range: tuple[float, float] | None = None,
                normalise: bool = False) -> tuple[str, int, bytes]:
    """A 2-D array as a RawImage: (encoding, step in bytes, data), little-endian rows.

    With ``value_range`` (low, high): ``mono8``, ``rint(255 (v - low) / (high - low))``
    clipped to [0, 255], in float32. Otherwise ``uint8`` is ``mono8``, ``uint16``
    ``mono16`` and ``float32`` ``32FC1``, their bytes as they are; anything else, or
    ``normalise``, is ``mono8`` scaled from the finite minimum (0) to the maximum (255).
    NaN pixels are 0, infinities clip. About 0.1 ms for 256 x 256.
    """
    width = plane.shape[1]
    if value_range is None and not normalise:
        if plane.dtype == np.uint8:
            return "mono8", width, plane.tobytes()
        if plane.dtype == np.uint16:
            return "mono16", 2 * width, plane.astype("<u2", copy=False).tobytes()
        if plane.dtype == np.float32:
            return "32FC1", 4 * width, plane.astype("<f4", copy=False).tobytes()
    if value_range is not None:
        low, high = value_range
    else:
        finite = plane[np.isfinite(plane)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    scaled = np.subtract(plane, np.float32(low), dtype=np.float32)
    scaled *= np.float32(255.0 / (high - low) if high > low else 0.0)
    np.clip(scaled, 0, 255, out=scaled)
    scaled[np.isnan(scaled)] = 0  # NaN pixels, and infinities times a zero gain
    return "mono8", width, np.rint(scaled, out=scaled).astype(np.uint8).tobytes()


class _PoseView(_View):
    """A position as a pose, a transform (world to the signal's frame) and a trajectory line."""

    def __init__(self, context: Context, tf: FrameTransformChannel, signal: str,
                 position: tuple[int, int, int], world: str) -> None:
        self.pose = PoseInFrameChannel(view_topic(signal, "pose"), context=context)
        self.trajectory = SceneUpdateChannel(view_topic(signal, "trajectory"), context=context)
        self.tf = tf
        self.signal = signal
        self.position = position
        self.world = world
        self.points: list[Point3] = []
        self.next_point_ns: int | None = None
        self.next_line_ns: int | None = None

    def log(self, message: Message, array: npt.NDArray[Any], stamp: Timestamp,
            log_time_ns: int) -> int:
        flat = array.reshape(-1)
        x, y, z = (float(flat[i]) for i in self.position)
        if not (math.isfinite(x) and math.isfinite(y) and math.isfinite(z)):
            return 0
        where = Vector3(x=x, y=y, z=z)
        self.pose.log(PoseInFrame(timestamp=stamp, frame_id=self.world,
                                  pose=Pose(position=where, orientation=_IDENTITY)),
                      log_time=log_time_ns)
        self.tf.log(FrameTransform(timestamp=stamp, parent_frame_id=self.world,
                                   child_frame_id=self.signal, translation=where,
                                   rotation=_IDENTITY), log_time=log_time_ns)
        t_ns = message.t_ns
        here = Point3(x=x, y=y, z=z)
        if self.next_point_ns is None or t_ns >= self.next_point_ns:
            self.points.append(here)
            self.next_point_ns = t_ns + TRAJECTORY_POINT_NS
        if self.next_line_ns is not None and t_ns < self.next_line_ns:
            return 2
        self.next_line_ns = t_ns + TRAJECTORY_PERIOD_NS
        line = LinePrimitive(type=LinePrimitiveLineType.LineStrip, thickness=2.0,
                             scale_invariant=True, points=[*self.points, here],
                             color=Color(r=0.2, g=0.8, b=1.0, a=1.0))
        origin = SpherePrimitive(pose=Pose(position=Vector3(), orientation=_IDENTITY),
                                 size=Vector3(x=10.0, y=10.0, z=10.0),
                                 color=Color(r=1.0, g=0.3, b=0.2, a=1.0))
        self.trajectory.log(SceneUpdate(entities=[
            SceneEntity(timestamp=stamp, frame_id=self.world, id=self.signal, lines=[line]),
            SceneEntity(timestamp=stamp, frame_id=self.world, id="origin",
                        spheres=[origin])]), log_time=log_time_ns)
        return 3
