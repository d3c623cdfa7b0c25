"""The Foxglove views of a recording: well-known schemas, decodable, beside unchanged wire bytes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from mcap.reader import make_reader

from flightai.bus.wire import decode, encode
from hil import demo
from hil.record import Recorder, RecorderOptions, Recording
from hil.record.views import image_bytes, json_value

PROTOBUF_VIEWS = {  # what the demo's views must include: topic -> Foxglove schema
    "/view/camera/image": "foxglove.RawImage",
    "/view/trn/input/patch": "foxglove.RawImage",
    "/view/trn/input/map": "foxglove.RawImage",
    "/view/nav/state/pose": "foxglove.PoseInFrame",
    "/view/tf": "foxglove.FrameTransform",
    "/view/nav/state/trajectory": "foxglove.SceneUpdate",
}
JSON_VIEWS = {"/view/nav/state", "/view/thrust/cmd", "/view/guidance/accel_cmd",
              "/view/rta/status", "/view/imu/dv", "/view/altimeter/range", "/view/health"}
WELL_KNOWN = {"foxglove.RawImage", "foxglove.PoseInFrame", "foxglove.FrameTransform",
              "foxglove.SceneUpdate", "foxglove.Log"}


@pytest.fixture(scope="module")
def views(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The demo recorded with its views, read once with every CRC checked."""
    out = tmp_path_factory.mktemp("demo")
    path = out / "run.mcap"
    assert demo.main(["--nominal", "--out", str(out), "--record", str(path)]) == 0
    by_topic: dict[str, list[Any]] = {}
    with path.open("rb") as f:
        reader = make_reader(f, validate_crcs=True)
        summary = reader.get_summary()
        for schema, channel, message in reader.iter_messages():
            by_topic.setdefault(channel.topic, []).append((schema, channel, message))
    return {"path": path, "summary": summary, "by_topic": by_topic}


def decode_frames(frames: list[Any]) -> tuple[tuple[str, np.ndarray], ...]:
    """The arrays of a message built by ``encode``."""
    return decode([f if isinstance(f, bytes) else f.tobytes() for f in frames],
                  max_message_bytes=1 << 30).arrays


def _decoder(schema: Any) -> Any:
    """The protobuf message class of a Foxglove schema (its FileDescriptorSet)."""
    files = descriptor_pb2.FileDescriptorSet.FromString(schema.data)
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(schema.name))


def _validate(value: Any, schema: dict[str, Any], path: str = "$") -> None:
    """The JSON schema subset the views use: type, properties, required, items, min/maxItems."""
    kinds = {"object": dict, "array": list, "string": str, "boolean": bool}
    types = schema.get("type")
    if types is not None:
        allowed = types if isinstance(types, list) else [types]
        ok = any((t == "null" and value is None)
                 or (t == "integer" and type(value) is int)
                 or (t == "number" and type(value) in (int, float))
                 or (t in kinds and type(value) is kinds[t]) for t in allowed)
        assert ok, f"{path}: {value!r} is not {allowed}"
    for key in schema.get("required", ()):
        assert key in value, f"{path}: {key} missing"
    for key, sub in schema.get("properties", {}).items():
        if key in value:
            _validate(value[key], sub, f"{path}.{key}")
    if "items" in schema:
        assert schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value))
        for i, item in enumerate(value):
            _validate(item, schema["items"], f"{path}[{i}]")


@pytest.mark.slow
def test_the_demo_views_use_the_well_known_schemas(views) -> None:
    summary = views["summary"]
    channels = {c.topic: c for c in summary.channels.values()}
    for topic, name in PROTOBUF_VIEWS.items():
        channel = channels[topic]
        schema = summary.schemas[channel.schema_id]
        assert (channel.message_encoding, schema.encoding, schema.name) == (
            "protobuf", "protobuf", name)
    for topic in JSON_VIEWS:
        channel = channels[topic]
        schema = summary.schemas[channel.schema_id]
        assert (channel.message_encoding, schema.encoding) == ("json", "jsonschema")
        assert json.loads(schema.data)["type"] == "object"
    for topic, channel in channels.items():  # every view is a well-known schema or JSON
        if topic.startswith("/view/"):
            schema = summary.schemas[channel.schema_id]
            assert schema.name in WELL_KNOWN or schema.encoding == "jsonschema", topic
        else:  # the wire channels: msgpack, no schema
            assert channel.message_encoding == "msgpack" and channel.schema_id == 0
    stats = Recording(views["path"]).metadata["flightai.recorder"]
    assert int(stats["views"]) == sum(
        n for i, n in summary.statistics.channel_message_counts.items()
        if summary.channels[i].topic.startswith("/view/"))
    assert stats["drops"] == "0"  # views are skipped when the writer is behind, never wire


@pytest.mark.slow
def test_the_camera_view_decodes_back_to_the_wire_image(views) -> None:
    by_topic = views["by_topic"]
    wire = {m.log_time: m for _, _, m in by_topic["camera.image"]}
    shown = by_topic["/view/camera/image"]
    assert len(wire) >= len(shown) > 100
    raw_image = _decoder(shown[0][0])
    recording = Recording(views["path"])
    images = {r.log_time_ns: r.decode().arrays[0][1] for r in recording.messages
              if r.topic == "camera.image"}
    for _, _, message in shown[::20]:
        image = raw_image.FromString(message.data)
        assert (image.width, image.height, image.encoding, image.step) == (256, 256, "mono8", 256)
        assert image.timestamp.seconds * 10**9 + image.timestamp.nanos == message.log_time
        truth = images[message.log_time]  # the wire image logged at the same instant
        expected = np.clip(np.rint(truth.astype(np.float64) * 255), 0, 255)
        pixels = np.frombuffer(image.data, np.uint8).reshape(256, 256)
        assert np.abs(pixels - expected).max() <= 1  # float32 rounding at .5 at most


@pytest.mark.slow
def test_the_pose_and_trajectory_follow_the_navigation_state(views) -> None:
    by_topic = views["by_topic"]
    recording = Recording(views["path"])
    states = {r.log_time_ns: r.decode() for r in recording.messages if r.topic == "out.nav"}
    poses = by_topic["/view/nav/state/pose"]
    pose_type = _decoder(poses[0][0])
    for _, _, message in poses[::200]:
        pose = pose_type.FromString(message.data)
        nav = dict(states[message.log_time].arrays)["nav.state"].reshape(-1)
        position = pose.pose.position
        assert (pose.frame_id, position.x, position.y, position.z) == (
            "world", nav[0], nav[1], nav[2])
    _, _, last = by_topic["/view/nav/state/trajectory"][-1]
    update = _decoder(by_topic["/view/nav/state/trajectory"][0][0]).FromString(last.data)
    line = next(e for e in update.entities if e.id == "nav.state").lines[0]
    assert len(line.points) > 100 and line.points[-1].z < line.points[0].z  # it descended


@pytest.mark.slow
def test_every_json_view_validates_against_its_schema(views) -> None:
    checked = 0
    for topic, messages in views["by_topic"].items():
        schema = messages[0][0]
        if not topic.startswith("/view/") or schema.encoding != "jsonschema":
            continue
        json_schema = json.loads(schema.data)
        for _, _, message in messages[:: max(1, len(messages) // 50)]:
            _validate(json.loads(message.data), json_schema, topic)
            checked += 1
    assert checked > 100
    thrust = json.loads(views["by_topic"]["/view/thrust/cmd"][-1][2].data)
    assert set(thrust) >= {"t_s", "t_ns", "status", "x", "y", "z"}


def test_views_leave_the_wire_channels_byte_for_byte(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    messages = [encode("camera.image", 0, 0, [("value", rng.random((256, 256), np.float32))]),
                encode("out.nav", 0, 20_000_000, [("nav.state", rng.random((1, 12))),
                                                  ("nav.rv", rng.random((1, 6), np.float32))],
                       fields={"task": "nav", "t_release_ns": 0, "status": "ok"}),
                encode("out.x", 0, 0, [("x", np.array([np.nan, np.inf], np.float32))]),
                encode("tick", 0, 0)]
    wire = {}
    for views in (True, False):
        path = tmp_path / f"views-{views}.mcap"
        with Recorder(path, RecorderOptions(views=views)) as recorder:
            for i, frames in enumerate(messages):
                recorder.record(frames, log_time_ns=1_000 + i)
        assert recorder.stats.views == (7 if views else 0)  # image, 2 plots, pose+tf+line, NaN
        with path.open("rb") as f:
            wire[views] = [(c.topic, c.message_encoding, c.metadata, m.log_time, m.data)
                           for _, c, m in make_reader(f, validate_crcs=True).iter_messages()
                           if not c.topic.startswith("/view/")]
    assert wire[True] == wire[False] and len(wire[True]) == len(messages)
    with (tmp_path / "views-True.mcap").open("rb") as f:
        shown = {c.topic: json.loads(m.data) for _, c, m
                 in make_reader(f).iter_messages(topics=["/view/x", "/view/nav/rv"])}
    assert shown["/view/x"] == {"t_s": 0.0, "t_ns": 0, "value": [None, None]}  # NaN, inf
    rv = dict(decode_frames(messages[1])).get("nav.rv")
    assert shown["/view/nav/rv"] == {"t_s": 0.02, "t_ns": 20_000_000, "status": "ok",
                                     **dict(zip(("r_x", "r_y", "r_z", "v_x", "v_y", "v_z"),
                                                rv.reshape(-1).tolist(), strict=True))}


def test_image_encodings() -> None:
    plane = np.arange(16 * 20, dtype=np.float32).reshape(16, 20) / 100
    assert image_bytes(plane) == ("32FC1", 80, plane.tobytes())  # bit for bit
    assert image_bytes(plane.astype(np.uint8)) == ("mono8", 20, plane.astype(np.uint8).tobytes())
    encoding, step, data = image_bytes(plane, normalise=True)
    scaled = np.frombuffer(data, np.uint8)
    assert (encoding, step, scaled.min(), scaled.max()) == ("mono8", 20, 0, 255)
    plane[0, 0] = np.nan
    _, _, data = image_bytes(plane, (0.0, 1.0))
    assert data[0] == 0 and data[-1] == 255  # NaN to 0; 3.19 clipped to 255
    plane[0, 1] = np.inf
    _, _, data = image_bytes(plane, normalise=True)  # the finite range, infinities clip
    assert (data[0], data[1], data[2], data[-1]) == (0, 255, 0, 255)


def test_json_values_are_valid_json() -> None:
    value = json_value({"a": [1.0, float("nan"), float("-inf")], 2: b"\x01", "b": True})
    assert json.loads(json.dumps(value, allow_nan=False)) == {
        "a": [1.0, None, None], "2": "01", "b": True}


def test_events_are_foxglove_logs_and_health_is_json(tmp_path: Path) -> None:
    path = tmp_path / "events.mcap"
    with Recorder(path) as recorder:
        recorder.record(encode("event", 0, 30_000_000, fields={
            "severity": "WARNING", "kind": "overrun", "task": "nav", "detail": "late"}))
        recorder.record(encode("health", 0, 100_000_000, fields={"health": {
            "mode": "NOMINAL", "frames": 10, "rejects": {}, "tasks": {"nav": {"overruns": 1}}}}))
    with path.open("rb") as f:
        shown = {c.topic: (s, m) for s, c, m in make_reader(f, validate_crcs=True).iter_messages()
                 if c.topic.startswith("/view/")}
    schema, message = shown["/view/events"]
    log = _decoder(schema).FromString(message.data)
    assert (schema.name, log.level, log.name, log.message) == (
        "foxglove.Log", 3, "nav", "overrun: late")  # 3: WARNING
    schema, message = shown["/view/health"]
    health = json.loads(message.data)
    _validate(health, json.loads(schema.data))
    assert health["tasks"]["nav"]["overruns"] == 1 and health["t_s"] == 0.1
