"""Replay sets: many recordings replayed through the runtime on Dask, divergent ones listed.

Each recording is replayed in-process on a worker (:func:`hil.replay.replay`)
and its outputs compared with the recorded ones (:func:`hil.replay.compare_replay`):
bit for bit when the recording's platform fingerprint matches the worker's,
within the given tolerances otherwise, as ``flightai hil replay`` does. A
recording's key is the hash of its bytes and of the options, so a re-run skips
recordings already judged and two copies of one file are judged once each.
"""

from __future__ import annotations

import glob
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distributed import Client

from hil.campaign.cluster import collect
from hil.campaign.store import write_atomic
from hil.record.reader import Recording
from hil.replay.compare import Tolerance
from hil.replay.player import compare_replay, replay


class ReplayFailed(RuntimeError):
    """A recording could not be replayed (unreadable, or its mission no longer loads)."""

    def __init__(self, recording: str, error: BaseException) -> None:
        super().__init__(f"{recording}: {type(error).__name__}: {error}")


def find_recordings(where: str) -> list[Path]:
    """The ``.mcap`` files in a folder, or the files a glob matches, sorted.

    Raises:
        FileNotFoundError: nothing matches.
    """
    folder = Path(where)
    paths = sorted(folder.glob("*.mcap")) if folder.is_dir() else sorted(
        Path(p) for p in glob.glob(where, recursive=True))
    if not paths:
        raise FileNotFoundError(f"{where}: no recordings (a folder of .mcap files or a glob)")
    return paths


def replay_one(path: str, overrides: Sequence[str], tolerances: Sequence[str]) -> dict[str, Any]:
    """Replay one recording on this worker and compare; the verdict as plain data."""
    recording = Recording(path)
    result = replay(recording, None, list(overrides), 1)
    comparison = compare_replay(recording, result, dict(Tolerance.parse(t) for t in tolerances))
    first = comparison.first
    return {"recording": path, "verdict": comparison.verdict, "bit_exact": comparison.bit_exact,
            "compared": comparison.compared, "equal": comparison.equal,
            "within": comparison.within, "missing": comparison.missing,
            "extra": comparison.extra, "digest": result.digest,
            "first_divergence": None if first is None else first.describe(),
            "max_abs_diff": comparison.max_abs_diff}


@dataclass(frozen=True)
class ReplaySetResult:
    """Every recording's verdict, in path order."""

    results: list[dict[str, Any]]

    @property
    def diverged(self) -> list[dict[str, Any]]:
        """The recordings whose replay diverged."""
        return [r for r in self.results if r["verdict"] == "DIVERGED"]

    @property
    def ok(self) -> bool:
        """No recording diverged."""
        return not self.diverged

    def summary(self) -> str:
        """A few lines for a person: counts, then each divergent recording."""
        lines = [f"flightai hil campaign: {len(self.results)} recordings replayed, "
                 f"{len(self.diverged)} diverged"]
        lines += [f"  DIVERGED {r['recording']}\n    first divergence: {r['first_divergence']}"
                  for r in self.diverged]
        return "\n".join(lines)


def _key(path: Path, overrides: Sequence[str], tolerances: Sequence[str]) -> str:
    digest = hashlib.sha256(path.read_bytes())
    digest.update(json.dumps([list(overrides), list(tolerances)]).encode())
    return f"replay-{digest.hexdigest()[:24]}"


def run_replay_set(where: str, out: Path, client: Client, *, overrides: Sequence[str] = (),
                   tolerances: Sequence[str] = (),
                   progress: Callable[[int, int], None] | None = None) -> ReplaySetResult:
    """Replay every recording of ``where`` on ``client``'s cluster; write ``replays.json``.

    Raises:
        FileNotFoundError: no recording matches ``where``.
        ReplayFailed: a recording raised (those judged before it stay stored).
    """
    for item in tolerances:
        Tolerance.parse(item)  # refuse a bad tolerance before any work
    paths = find_recordings(where)
    folder = out / "replays"
    folder.mkdir(parents=True, exist_ok=True)
    keys = {str(p.resolve()): _key(p, overrides, tolerances) for p in paths}
    todo = [p for p, k in keys.items() if not (folder / f"{k}.json").exists()]
    stored = len(keys) - len(todo)
    if progress:
        progress(stored, len(keys))
    futures = [client.submit(replay_one, p, list(overrides), list(tolerances), key=keys[p])
               for p in todo]
    names = {keys[p]: p for p in todo}
    collect(client, futures,
            lambda f: write_atomic(folder / f"{f.key}.json",
                                   json.dumps(f.result(), indent=1) + "\n"),
            lambda f: ReplayFailed(names[f.key], f.exception()),
            stored, len(keys), progress)
    results = [json.loads((folder / f"{k}.json").read_text()) for k in keys.values()]
    for path, result in zip(keys, results, strict=True):
        result["recording"] = path  # a copy judged under another name
    outcome = ReplaySetResult(results)
    write_atomic(out / "replays.json", json.dumps(
        {"recordings": len(results), "diverged": [r["recording"] for r in outcome.diverged],
         "results": results}, indent=1) + "\n")
    return outcome
