"""The run store: every trained member run, saved once and read by whoever needs it.

A member run is one seed of one configuration, trained for a given number of steps. Its key is
a hash of everything its numbers depend on: the model and training spec, the seed, the data's
sha256, the engine's code (the makemore modules that compute training) and the torch build. Its
tensors (parameters, buffers, per-step losses, recorded series) go into `<key>.safetensors`, and
a JSON sidecar `<key>.json` holds the spec, the seed, small results (losses) and the sha256 of
the tensor file.

Writes are atomic: the tensor file, then the sidecar, each written to a temporary name and
renamed; a member run exists once its sidecar does. A read verifies the checksum: a truncated
or altered file is reported in one line, removed, and trained again. Nothing here unpickles:
safetensors and JSON only.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from makemore.data import REPO_ROOT

DEFAULT_ROOT = REPO_ROOT / "runs"
ENV_VAR = "MAKEMORE_RUNS"
# The modules whose code decides a run's numbers; editing any other file keeps the store valid.
ENGINE_FILES = ("data.py", "modules.py", "models.py", "train.py", "fast.py", "diagnostics.py")
SIDECAR_VERSION = 1


def engine_version() -> str:
    """Hash of the engine's source and the torch build: a run is reused only by the same."""
    digest = hashlib.sha256(torch.__version__.encode())
    for name in ENGINE_FILES:
        path = REPO_ROOT / "makemore" / name
        if path.is_file():
            digest.update(name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def canonical(payload: Any) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)


def run_key(spec: dict[str, Any], seed: int, data_sha256: str, engine: str) -> str:
    text = canonical({"spec": spec, "seed": int(seed), "data": data_sha256, "engine": engine})
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class StoreError(RuntimeError):
    """A store file that cannot be used; the message names it."""


@dataclass(frozen=True)
class MemberRun:
    key: str
    sidecar: dict[str, Any]
    tensors: dict[str, torch.Tensor]

    @property
    def spec(self) -> dict[str, Any]:
        return self.sidecar["spec"]

    @property
    def seed(self) -> int:
        return int(self.sidecar["seed"])

    @property
    def results(self) -> dict[str, Any]:
        return self.sidecar.get("results", {})


def write_atomic(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def pack(tensors: dict[str, torch.Tensor]) -> bytes:
    return save_tensors({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()})


class RunStore:
    """A folder of member runs (default `runs/` in the checkout, or $MAKEMORE_RUNS)."""

    def __init__(self, root: Path | str | None = None, report: Any = None):
        chosen = root if root is not None else os.environ.get(ENV_VAR) or DEFAULT_ROOT
        self.root = Path(chosen)
        self.report = report or (lambda line: print(line, file=sys.stderr))

    def paths(self, key: str) -> tuple[Path, Path]:
        folder = self.root / key[:2]
        return folder / f"{key}.safetensors", folder / f"{key}.json"

    def has(self, key: str) -> bool:
        return self.paths(key)[1].is_file()

    def put(self, key: str, spec: dict[str, Any], seed: int, tensors: dict[str, torch.Tensor],
            results: dict[str, Any] | None = None) -> None:
        payload = pack(tensors)
        tensor_path, sidecar_path = self.paths(key)
        # a run written again loses its sidecar first: killed between the two renames, the
        # run is absent (trained again), never an old sidecar over new tensors
        sidecar_path.unlink(missing_ok=True)
        write_atomic(tensor_path, payload)
        sidecar = {
            "version": SIDECAR_VERSION,
            "key": key,
            "spec": spec,
            "seed": int(seed),
            "results": results or {},
            "tensors_sha256": hashlib.sha256(payload).hexdigest(),
            "bytes": len(payload),
            "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        write_atomic(sidecar_path, (json.dumps(sidecar, indent=1, sort_keys=True) + "\n")
                     .encode())

    def get(self, key: str) -> MemberRun | None:
        """The member run, or None if absent. A damaged one is reported, removed and None."""
        tensor_path, sidecar_path = self.paths(key)
        if not sidecar_path.is_file():
            return None
        try:
            sidecar = json.loads(sidecar_path.read_text())
            payload = tensor_path.read_bytes()
            if hashlib.sha256(payload).hexdigest() != sidecar["tensors_sha256"]:
                raise StoreError("its tensors do not match the checksum in its sidecar")
            if sidecar.get("key") != key:
                raise StoreError("its sidecar names another run")
            tensors = load_tensors(payload)
        except (OSError, ValueError, KeyError, StoreError) as err:
            self.report(f"run store: {sidecar_path.name} is damaged ({err}); training it again")
            self.remove(key)
            return None
        return MemberRun(key, sidecar, tensors)

    def find(self, prefix: str) -> MemberRun:
        """The run whose key starts with `prefix` (an ID as `train --save` prints it)."""
        matches = sorted({p.stem for p in self.root.glob(f"{prefix[:2]}/{prefix}*.json")})
        if len(matches) != 1:
            found = "no run" if not matches else f"{len(matches)} runs"
            raise StoreError(f"{found} in {self.root} with an ID starting {prefix!r}: list "
                             "them with `python -m ablations runs`, or train one with "
                             "`python -m makemore train --save`")
        run = self.get(matches[0])
        if run is None:
            raise StoreError(f"run {matches[0]} was damaged and has been removed: train it again")
        return run

    def remove(self, key: str) -> None:
        for path in self.paths(key):
            path.unlink(missing_ok=True)

    def sidecars(self) -> Iterator[dict[str, Any]]:
        """Every readable sidecar (not verified: listing is cheap; `get` verifies)."""
        if not self.root.is_dir():
            return
        for path in sorted(self.root.glob("??/*.json")):
            try:
                yield json.loads(path.read_text())
            except (OSError, ValueError):
                continue

    # --- checkpoints of ensembles in training ---

    def checkpoint_path(self, group_key: str) -> Path:
        return self.root / "checkpoints" / f"{group_key}.safetensors"
