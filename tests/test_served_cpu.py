"""``benchmarks.served_cpu``: the server's CPU read from its processes and attributed to the right models."""

from __future__ import annotations

from benchmarks.served_cpu import SERVER, cpu_seconds, server_processes
from sync_defense import contract as c
from sync_defense.client import SyncDefenseClient


def test_an_upload_is_charged_to_the_step_and_the_graphs_that_did_its_work(triton_face_graphs, talking_mp4: bytes) -> None:
    processes = server_processes(triton_face_graphs.repository)
    assert set(processes) == {SERVER, *c.STEPS, c.PHONES, *c.GRAPHS, *c.FACE_GRAPHS}  # the ensemble has no process
    assert len(processes[SERVER]) == 1 and len(processes[c.PREPROCESS]) == 2  # one server, two preprocess instances
    before = cpu_seconds(processes)
    SyncDefenseClient(f"127.0.0.1:{triton_face_graphs.grpc_port}", "grpc").detect(talking_mp4)
    spent = {model: seconds - before[model] for model, seconds in cpu_seconds(processes).items()}
    assert spent[c.PREPROCESS] > 0.2 and spent[c.FACE_MESH] > 0.1 and spent[c.VISUAL_ENCODER] > 0.01 and spent[c.PHONES] > 0.05
    assert spent[c.PREPROCESS] + spent[c.FACE_MESH] > sum(spent.values()) / 2  # where a 7-s upload's work is
