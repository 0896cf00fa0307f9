"""The run store and training checkpoints: atomic writes, damage detected by checksum and
reported in one line, and a long run killed at any moment resuming bit-identical."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from makemore import checkpoint
from makemore.models import NOTEBOOK_SEED, deep, mlp
from makemore.modules import Streams
from makemore.store import RunStore, run_key
from makemore.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[2]
SPEC = {"model": "mlp", "config": {"w1": 0.2}, "train": {"steps": 10}}


def tensors(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"weight": torch.randn(4, 3, generator=g), "losses": torch.rand(10, generator=g)}


def test_put_then_get_returns_the_same_bits(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.put("k1", SPEC, 7, tensors(), {"val_loss": 2.1})
    run = store.get("k1")
    assert run is not None and run.seed == 7 and run.spec == SPEC
    assert run.results == {"val_loss": 2.1}
    assert all(torch.equal(run.tensors[k], v) for k, v in tensors().items())
    assert store.get("absent") is None


@given(cut=st.floats(0.0, 0.99), flip=st.booleans())
def test_a_damaged_run_is_reported_removed_and_absent(tmp_path_factory, cut, flip) -> None:
    """A truncated tensor file, or one with a flipped byte, fails its checksum: one line, the
    run is removed (so it is trained again), nothing raises."""
    store_dir = tmp_path_factory.mktemp("store")
    lines: list[str] = []
    store = RunStore(store_dir, report=lines.append)
    store.put("k2", SPEC, 1, tensors())
    tensor_path, sidecar_path = store.paths("k2")
    payload = bytearray(tensor_path.read_bytes())
    if flip:
        payload[int(cut * len(payload))] ^= 0xFF
    else:
        payload = payload[: int(cut * len(payload))]
    tensor_path.write_bytes(bytes(payload))
    assert store.get("k2") is None
    assert len(lines) == 1 and "k2.json is damaged" in lines[0] and "training it again" in lines[0]
    assert not sidecar_path.exists() and not tensor_path.exists()


def test_a_sidecar_naming_another_run_is_damage(tmp_path: Path) -> None:
    lines: list[str] = []
    store = RunStore(tmp_path, report=lines.append)
    store.put("k3", SPEC, 1, tensors())
    other = store.paths("k4")
    other[0].parent.mkdir(parents=True, exist_ok=True)
    for source, target in zip(store.paths("k3"), other, strict=True):
        target.write_bytes(source.read_bytes())
    assert store.get("k4") is None and "names another run" in lines[0]


def test_keys_differ_exactly_when_an_input_does() -> None:
    base = ("e1", "d1", 5)
    keys = {run_key(SPEC, seed, data, engine) for engine, data, seed in
            [base, ("e2", "d1", 5), ("e1", "d2", 5), ("e1", "d1", 6)]}
    assert len(keys) == 4
    assert run_key(dict(reversed(list(SPEC.items()))), 5, "d1", "e1") == run_key(SPEC, 5, "d1",
                                                                                  "e1")


WRITER = """
import sys, torch
from makemore.store import RunStore
store = RunStore(sys.argv[1])
i = 0
while True:
    store.put(f"w{i % 5}", {"i": i}, i, {"x": torch.full((50_000,), float(i))})
    i += 1
"""


def test_sigkill_while_writing_leaves_only_complete_runs(tmp_path: Path) -> None:
    """A process writing runs in a loop is SIGKILLed at random moments: every run whose
    sidecar exists reads back whole (the sidecar is written last, each file by rename)."""
    rng = random.Random(0)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for attempt in range(5):
        process = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], env=env)
        deadline = time.monotonic() + 120
        while (len(list(tmp_path.glob("??/*.json"))) <= attempt and process.poll() is None
               and time.monotonic() < deadline):
            time.sleep(0.01)  # writing has begun (past the imports)
        time.sleep(rng.uniform(0.0, 0.3))
        process.send_signal(signal.SIGKILL)
        process.wait()
        lines: list[str] = []
        store = RunStore(tmp_path, report=lines.append)
        assert list(store.sidecars()), "the writer was killed before it wrote anything"
        for sidecar in store.sidecars():
            run = store.get(sidecar["key"])
            assert run is not None and lines == []
            assert torch.equal(run.tensors["x"], torch.full((50_000,), float(sidecar["seed"])))


# --- checkpoints ----------------------------------------------------------------------------


def build(optimizer: str):
    streams = Streams([NOTEBOOK_SEED + i for i in range(3)])
    model = deep(streams, batchnorm="before", batchnorm_last=True, gain=1.0, n_hidden=16,
                 depth=2)
    return model, streams, TrainConfig(steps=3000, decay_step=2000, optimizer=optimizer)


class Stop(Exception):
    pass


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_resumed_run_is_bit_identical(splits, tmp_path: Path, optimizer: str) -> None:
    model, streams, config = build(optimizer)
    whole = train(model, splits.train, config, streams)
    path = tmp_path / "c.safetensors"
    done = [0]

    def stop_after_2500(n: int) -> None:
        done[0] += n
        if done[0] >= 2500:
            raise Stop

    model_b, streams_b, _ = build(optimizer)
    with pytest.raises(Stop):
        train(model_b, splits.train, config, streams_b, checkpoint=(path, 1000),
              progress=stop_after_2500)
    assert path.is_file()
    model_c, streams_c, _ = build(optimizer)
    resumed = train(model_c, splits.train, config, streams_c, checkpoint=(path, 1000))
    assert torch.equal(whole.losses, resumed.losses)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), model_c.parameters(),
                                                  strict=True))
    assert all(torch.equal(a, b) for a, b in zip(model.buffers(), model_c.buffers(), strict=True))


def test_a_damaged_checkpoint_is_reported_and_the_run_starts_over(splits, tmp_path: Path,
                                                                   capsys) -> None:
    path = tmp_path / "c.safetensors"
    path.write_bytes(b"not a checkpoint")
    streams = Streams([NOTEBOOK_SEED])
    model = mlp(streams, "kaiming", n_hidden=8)
    losses = torch.zeros(10, 1)
    assert checkpoint.load(path, model, streams, losses) == (0, {})
    assert "is damaged" in capsys.readouterr().err and not path.exists()


def train_command(store: Path, steps: int = 6000) -> list[str]:
    return [sys.executable, "-m", "makemore", "train", "--config", "batchnorm", "--seeds", "2",
            "--steps", str(steps), "--save", "--json", "--runs", str(store)]


def test_sigkill_during_a_long_run_then_the_rerun_ends_bit_identical(tmp_path: Path) -> None:
    """`makemore train --save` checkpointing every 1,000 steps is SIGKILLed once a checkpoint
    exists; the same command again resumes from it and stores runs bit-identical to those of
    an uninterrupted run."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
           "MAKEMORE_CHECKPOINT_EVERY": "1000"}
    killed = tmp_path / "killed"
    process = subprocess.Popen(train_command(killed), cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not list(killed.glob("checkpoints/*.safetensors")) and time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before its first checkpoint"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not list(killed.glob("??/*.json")), "killed before any run was stored"
    resumed = subprocess.run(train_command(killed), cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=600)
    whole = subprocess.run(train_command(tmp_path / "whole"), cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=600)
    assert resumed.returncode == whole.returncode == 0, resumed.stderr + whole.stderr
    # the rerun's first progress line already counts the checkpointed steps: it resumed
    first = re.search(r"(\d+)/12000 seed-steps", resumed.stderr)
    assert first is not None and int(first.group(1)) >= 2000, resumed.stderr
    keys = json.loads(whole.stdout)["runs"]
    assert json.loads(resumed.stdout)["runs"] == keys
    assert not list(killed.glob("checkpoints/*.safetensors"))  # removed once stored
    for key in keys:
        a, b = RunStore(killed).get(key), RunStore(tmp_path / "whole").get(key)
        assert a is not None and b is not None
        assert all(torch.equal(a.tensors[name], b.tensors[name]) for name in b.tensors)
