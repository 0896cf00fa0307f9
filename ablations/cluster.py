"""The run graph on Dask distributed: training groups, then the claims that need them.

Workers compute; the client writes. A training task returns its member runs as safetensors
bytes, which the client puts into its run store and hands to the claims that need them, so no
shared filesystem is needed. Where the run store's folder exists on a worker (the same machine,
or a shared mount at the same path), the worker also checkpoints long runs there, so that a
task rescheduled after a worker died resumes from its last checkpoint.

Each worker runs one thread (torch too): the engine's numbers do not depend on the thread count
or on which members train together, so the results equal a serial run's bit for bit.

A training task reports its seed-steps as it goes, as Dask events that the client's progress
display subscribes to, so that the rate and ETA move while long runs train.
"""

from __future__ import annotations

import os
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablations.context import PROFILES, Context
from makemore.store import RunStore, pack

WORKER_THREADS = 1
PROGRESS_TOPIC = "makemore-seed-steps"


@dataclass(frozen=True)
class Settings:
    """What a worker needs to rebuild the client's context."""

    profile: str
    n_seeds: int | None
    device: str
    data_path: str | None
    allow_other_data: bool
    store_root: str

    @classmethod
    def of(cls, ctx: Context) -> Settings:
        root = ""
        if ctx.store is not None:  # made now, so that workers on this machine find it
            ctx.store.root.mkdir(parents=True, exist_ok=True)
            root = str(ctx.store.root.resolve())
        return cls(ctx.profile.name, ctx.n_seeds, str(ctx.device), ctx.data_path,
                   ctx.allow_other_data, root)

    def context(self) -> Context:
        import torch

        torch.set_num_threads(WORKER_THREADS)
        store = RunStore(self.store_root) if self.store_root and Path(
            self.store_root).is_dir() else None
        return Context(PROFILES[self.profile], torch.device(self.device), self.n_seeds,
                       self.data_path, self.allow_other_data, store)


def train_task(settings: Settings, specs: list) -> dict[str, tuple[bytes, dict[str, Any]]]:
    """Train one group on a worker; return each member run as bytes and results. Seed-steps
    are logged as events under PROGRESS_TOPIC as they are done: (the group's first key, n)."""
    from distributed import get_worker

    from ablations.experiments.runs import train_group

    ctx = settings.context()
    worker, group = get_worker(), specs[0].key
    ctx.progress = lambda n: worker.log_event(PROGRESS_TOPIC, [group, n])
    trained = train_group(ctx, specs)
    return {key: (pack(tensors), results) for key, (tensors, results) in trained.items()}


def claim_task(settings: Settings, claim_id: str, key: str, code: str, commit: str,
               *payloads: dict[str, tuple[bytes, dict[str, Any]]]) -> Any:
    """Compute one claim on a worker from the member runs it was handed."""
    from safetensors.torch import load as load_tensors

    from ablations.registry import load_all
    from ablations.runner import compute_claim

    ctx = settings.context()
    for payload in payloads:
        for run_key, (blob, results) in payload.items():
            ctx._memo[run_key] = (load_tensors(blob), results)
    return compute_claim(load_all()[claim_id], ctx, key, code, commit)


class StreamedSteps:
    """Seed-steps of the groups in training, counted from their events and settled when a
    group is done: its events after that, or beyond its size (a rescheduled task that starts
    over), are not counted again. `tell(n)` hears of every counted step. Events arrive on the
    client's event loop and completions on the main thread, hence the lock."""

    def __init__(self, sizes: dict[str, int], tell: Callable[[int], None]):
        self.sizes, self.tell = sizes, tell
        self.counted = dict.fromkeys(sizes, 0)
        self._lock = threading.Lock()

    def event(self, event: tuple[float, Any]) -> None:
        group, n = event[1]
        with self._lock:
            if group not in self.counted:
                return
            n = min(n, self.sizes[group] - self.counted[group])
            self.counted[group] += n
        if n > 0:
            self.tell(n)

    def done(self, group: str) -> None:
        with self._lock:
            rest = self.sizes[group] - self.counted.pop(group, self.sizes[group])
        if rest > 0:
            self.tell(rest)


class SchedulerError(ConnectionError):
    """No Dask scheduler answers at the address given."""


def connect(workers: int, scheduler: str | None) -> tuple[Any, Any]:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise SchedulerError("--workers and --scheduler need Dask: "
                             "pip install 'makemore-repro[dask]'") from None
    if scheduler:
        try:
            return Client(scheduler, timeout="10s"), None
        except (OSError, TimeoutError) as err:
            raise SchedulerError(f"no Dask scheduler answers at {scheduler} ({err}); start one "
                                 "with `dask scheduler`, or drop --scheduler") from None
    os.environ.setdefault("OMP_NUM_THREADS", str(WORKER_THREADS))
    cluster = LocalCluster(n_workers=workers, threads_per_worker=WORKER_THREADS, processes=True,
                           dashboard_address=None, silence_logs=40)
    return Client(cluster), cluster


def execute_on_dask(work: Any, ctx: Context, commit: str, finished: Callable[[Any], None],
                    failed: Callable[..., None], progress: Any, result: Any, *,
                    workers: int, scheduler: str | None) -> None:
    """Submit the plan as one graph and write results as they arrive."""
    client, cluster = connect(workers, scheduler)
    from distributed import as_completed

    settings = Settings.of(ctx)
    streamed = StreamedSteps({group[0].key: len(group) * group[0].spec["train"]["steps"]
                              for group in work.groups}, progress.seed_steps)
    try:
        client.subscribe_topic(PROGRESS_TOPIC, streamed.event)
        # groups train in the plan's order (cheapest claims first); a claim runs as soon as
        # its groups are done, before any waiting group
        runs = [client.submit(train_task, settings, group, key=f"train-{i}-{group[0].key[:8]}",
                              pure=False, priority=len(work.groups) - i)
                for i, group in enumerate(work.groups)]
        claims = {client.submit(claim_task, settings, claim.id, work.keys[claim.id],
                                work.codes[claim.id], commit,
                                *[runs[i] for i in work.needs[claim.id]],
                                key=f"claim-{claim.id}", pure=False,
                                priority=len(work.groups) + 1): claim.id
                  for claim in work.claims}
        group_of = {future.key: group for future, group in zip(runs, work.groups, strict=True)}
        for future in as_completed([*runs, *claims]):
            if future.key in group_of:
                try:
                    store_runs(ctx, group_of[future.key], future.result())
                except Exception as err:  # its claims fail with it, and say so
                    progress.stream.write(f"training {future.key} failed: {err}\n")
                    continue
                streamed.done(group_of[future.key][0].key)
                progress.run_done()
                result.groups_trained += 1
                result.member_runs_trained += len(group_of[future.key])
                continue
            try:
                finished(future.result())
            except Exception as err:  # a claim's bug must not lose the others' results
                failed(claims[future], err, "".join(traceback.format_exception(err)))
    finally:
        client.unsubscribe_topic(PROGRESS_TOPIC)
        client.close()
        if cluster is not None:
            cluster.close()


def store_runs(ctx: Context, group: list, payload: dict[str, tuple[bytes, dict]]) -> None:
    """The client keeps what a worker trained (unless the worker already wrote it)."""
    from safetensors.torch import load as load_tensors

    if ctx.store is None:
        return
    for member in group:
        if not ctx.store.has(member.key):
            blob, results = payload[member.key]
            ctx.store.put(member.key, member.spec, member.seed, load_tensors(blob), results)
