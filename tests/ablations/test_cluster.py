"""Progress from a Dask cluster: training tasks log their seed-steps as events, and the client
counts each group's steps once, whatever order the events and completions arrive in."""

from __future__ import annotations

import time
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from ablations.cluster import PROGRESS_TOPIC, Settings, StreamedSteps, train_task
from ablations.context import PROFILES, Context
from ablations.experiments.runs import missing_groups, mlp_run
from makemore.store import RunStore

# a sequence of (group, seed-steps) events, None standing for "the group is done"; sizes 1-50
histories = st.dictionaries(st.sampled_from("abcd"), st.integers(1, 50), min_size=1).flatmap(
    lambda sizes: st.tuples(st.just(sizes), st.lists(
        st.tuples(st.sampled_from(sorted(sizes)), st.none() | st.integers(1, 60)), max_size=30)))


@given(histories)
def test_each_group_is_counted_once_and_in_full(history) -> None:
    sizes, events = history
    told: list[int] = []
    streamed = StreamedSteps(sizes, told.append)
    done: set[str] = set()
    for group, n in events:
        if n is None:
            if group not in done:
                streamed.done(group)
                done.add(group)
        else:
            streamed.event((0.0, [group, n]))
        assert sum(told) <= sum(sizes.values())
        assert all(n > 0 for n in told)
    for group in sorted(set(sizes) - done):
        streamed.done(group)
    assert sum(told) == sum(sizes.values())


def test_a_training_task_logs_its_seed_steps(tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    ctx = Context(PROFILES["tiny"], n_seeds=2, store=RunStore(tmp_path / "runs"))
    (group,) = missing_groups(ctx, [mlp_run("kaiming", 4_000)])
    logged: list[int] = []
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.subscribe_topic(PROGRESS_TOPIC, lambda event: logged.append(event[1][1]))
        client.submit(train_task, Settings.of(ctx), group, pure=False).result(timeout=300)
        expected = len(group) * group[0].spec["train"]["steps"]
        deadline = time.monotonic() + 60  # events travel through the scheduler
        while sum(logged) < expected and time.monotonic() < deadline:
            time.sleep(0.05)
    assert sum(logged) == expected
