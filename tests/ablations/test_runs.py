"""Run templates and the run store together: every member run is trained once and reused by
whoever asks, whatever its companions, with the same bits; planning is deterministic; and a
run on a Dask cluster writes what a serial run writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ablations.context import PROFILES, Context
from ablations.experiments import runs as runs_module
from ablations.experiments.runs import deep_run, member_specs, missing_groups, mlp_run, trained
from makemore.store import RunStore

LONG = 4_000  # at the tiny profile's scale (0.001): 4 steps


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    return Context(PROFILES["tiny"], n_seeds=2, store=RunStore(tmp_path / "runs"))


def count_training(monkeypatch) -> list[int]:
    """Members trained per call of train_group."""
    calls: list[int] = []
    real = runs_module.train_group

    def counted(ctx, specs):
        calls.append(len(specs))
        return real(ctx, specs)

    monkeypatch.setattr(runs_module, "train_group", counted)
    return calls


def test_a_member_run_is_trained_once_and_shared(ctx: Context, monkeypatch) -> None:
    calls = count_training(monkeypatch)
    sweep = mlp_run("kaiming", LONG, vary={"w2": (0.01, 0.1)})
    single = mlp_run("kaiming", LONG, w2=0.1)
    grouped = trained(ctx, sweep)
    alone = trained(ctx, single)  # its members are members of the sweep: nothing to train
    assert calls == [4]
    assert member_specs(single, ctx)[1].key == member_specs(sweep, ctx)[3].key
    for a, b in zip(alone.model.parameters(), grouped.model.parameters(), strict=True):
        assert torch.equal(a, b[2:])
    assert alone.val_loss.tolist() == grouped.val_loss[2:].tolist()


def test_companions_do_not_change_a_members_bits(tmp_path: Path) -> None:
    """The member (w2 = 0.1, seed 0) trained with a different companion (or alone) in a fresh
    store has the same parameters: the store may group members freely."""
    results = []
    for companions in ((0.01, 0.1), (0.1,), (0.1, 0.5)):
        ctx = Context(PROFILES["tiny"], n_seeds=1, store=RunStore(tmp_path / str(companions)))
        run = trained(ctx, mlp_run("kaiming", LONG, vary={"w2": companions}))
        index = companions.index(0.1)
        results.append([p[index].clone() for p in run.model.parameters()])
    for other in results[1:]:
        assert all(torch.equal(a, b) for a, b in zip(results[0], other, strict=True))


def test_runs_differing_in_shape_train_apart_and_planning_is_deterministic(ctx: Context) -> None:
    templates = [mlp_run("kaiming", LONG), mlp_run("batchnorm", LONG),
                 deep_run(LONG, vary={"gain": (1.0, 5 / 3)}), deep_run(LONG, gain=1.0)]
    groups = missing_groups(ctx, templates)
    assert sorted(len(g) for g in groups) == [2, 2, 4]  # deep gains together, two MLPs apart
    assert [[m.key for m in g] for g in groups] == [
        [m.key for m in g] for g in missing_groups(ctx, list(reversed(templates)))]


def test_a_damaged_stored_run_is_trained_again(ctx: Context, monkeypatch, capsys) -> None:
    template = mlp_run("kaiming", LONG)
    first = trained(ctx, template)
    key = member_specs(template, ctx)[0].key
    tensor_path, _ = ctx.store.paths(key)
    tensor_path.write_bytes(tensor_path.read_bytes()[:100])
    calls = count_training(monkeypatch)
    again = trained(ctx, template)
    assert calls == [1] and "is damaged" in capsys.readouterr().err
    assert all(torch.equal(a, b) for a, b in zip(first.model.parameters(),
                                                  again.model.parameters(), strict=True))


def test_serial_and_two_workers_write_the_same_results(tmp_path: Path) -> None:
    """The same claims on a 2-worker LocalCluster and in this process: identical metrics."""
    from ablations.registry import select
    from ablations.runner import run_all

    claims = select(["init.expected-loss", "kaiming.mlp"])
    written = {}
    for mode, workers in (("serial", 0), ("dask", 2)):
        ctx = Context(PROFILES["tiny"], store=RunStore(tmp_path / f"runs-{mode}"))
        run_all(claims, ctx, tmp_path / mode, workers=workers, report=lambda line: None)
        written[mode] = {c.id: json.loads((tmp_path / mode / c.id / "result.json").read_text())
                         for c in claims}
    for claim in claims:
        a, b = written["serial"][claim.id], written["dask"][claim.id]
        assert a["metrics"] == b["metrics"] and a["verdict"] == b["verdict"]


@pytest.mark.slow
def test_a_worker_killed_mid_run_is_rescheduled_and_resumes(tmp_path: Path, monkeypatch) -> None:
    """A LocalCluster worker is SIGKILLed while it trains a checkpointed group; Dask reschedules
    the task, which resumes from the checkpoint and returns the runs an uninterrupted training
    returns, bit for bit."""
    import os
    import signal
    import time

    from distributed import Client, LocalCluster
    from safetensors.torch import load as load_tensors

    from ablations.cluster import Settings, train_task
    from makemore.runs import train_members

    monkeypatch.setenv("MAKEMORE_CHECKPOINT_EVERY", "1000")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    ctx = Context(PROFILES["full"], n_seeds=2, store=RunStore(tmp_path / "runs"))
    (group,) = missing_groups(ctx, [mlp_run("batchnorm", 8000)])
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        future = client.submit(train_task, Settings.of(ctx), group, pure=False)
        deadline = time.monotonic() + 300
        while not list((tmp_path / "runs").glob("checkpoints/*.safetensors")):
            assert time.monotonic() < deadline and not future.done()
            time.sleep(0.05)
        (address,) = [a for a, keys in client.processing().items() if future.key in keys]
        pid = client.run(os.getpid, workers=[address])[address]
        os.kill(pid, signal.SIGKILL)
        resumed = future.result(timeout=600)
    whole = train_members(group, ctx.splits(), ctx.device, None)
    for key, (tensors, results) in whole.items():
        blob, got = resumed[key]
        assert got == results
        assert all(torch.equal(load_tensors(blob)[k], v.contiguous()) for k, v in tensors.items())
