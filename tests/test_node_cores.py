"""The engine-build step sizes the Python models for the node's cores: the cgroup quota, the override, the rewrite."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sync_defense import contract as c
from sync_defense.export.model_repository import DEFAULT_GPU_CORES, write_sources
from sync_defense.export.node_cores import (
    CORES_ENV,
    REGION_SLACK,
    available_cores,
    cgroup_cpu_quota,
    fit_to_node,
    node_cores,
    repository_instances,
    shm_bound,
    shm_warning,
)
from sync_defense.model.config import MODEL_CONFIGS

ROOT = Path(__file__).resolve().parent.parent
ENGINE_BUILD = ROOT / "deploy" / "bin" / "sync-defense-engine-build"
TINY = MODEL_CONFIGS["tiny"]


def _instances(repository: Path, model: str) -> int:
    (line,) = [line for line in (repository / model / "config.pbtxt").read_text().splitlines() if line.startswith("instance_group")]
    return int(line.split("count:")[1].split()[0])


def _files(repository: Path) -> dict[str, bytes]:
    return {str(p.relative_to(repository)): p.read_bytes() for p in sorted(repository.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(("files", "quota"), [
    ({"cpu.max": "250000 100000\n"}, 2.5),
    ({"cpu.max": "max 100000\n"}, None),
    ({"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1.0),
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    ({}, None),
])
def test_the_cgroup_quota_is_read_from_v2_or_v1(tmp_path: Path, files: dict[str, str], quota: float | None) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cgroup_cpu_quota(tmp_path) == quota


def test_a_quota_caps_the_cores_and_rounds_up(tmp_path: Path) -> None:
    cpus = len(os.sched_getaffinity(0))
    assert available_cores(tmp_path) == cpus  # no quota: every CPU this process may run on
    (tmp_path / "cpu.max").write_text("50000 100000\n")  # half a CPU: one instance still runs
    assert available_cores(tmp_path) == 1
    (tmp_path / "cpu.max").write_text(f"{100000 * (cpus + 8)} 100000\n")  # more quota than CPUs: the CPUs
    assert available_cores(tmp_path) == cpus


def test_the_override_wins_and_nonsense_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CORES_ENV, "16")
    assert node_cores() == 16 and node_cores(3) == 3
    monkeypatch.setenv(CORES_ENV, "")
    assert node_cores() == available_cores()
    for wrong in ("four", "2.5", "0"):
        monkeypatch.setenv(CORES_ENV, wrong)
        with pytest.raises(ValueError, match="cores"):
            node_cores()


@pytest.mark.parametrize("face_models", ["graphs", "mediapipe"])
def test_a_fitted_repository_is_what_the_generator_writes_for_those_cores(tmp_path: Path, face_models: str) -> None:
    image, fitted, expected = tmp_path / "image", tmp_path / "fitted", tmp_path / "expected"
    write_sources(image, "gpu", TINY, face_models=face_models)
    shutil.copytree(image, fitted)
    instances = fit_to_node(fitted, 16)
    write_sources(expected, "gpu", TINY, cores=16, face_models=face_models)
    assert _files(fitted) == _files(expected) != _files(image)
    assert instances[c.PREPROCESS] == instances[c.PHONES] == _instances(fitted, c.PHONES) == 15
    assert _instances(image, c.PREPROCESS) == DEFAULT_GPU_CORES - 1


def test_the_shared_memory_bound_counts_an_upload_per_preprocess_instance(tmp_path: Path) -> None:
    write_sources(tmp_path, "gpu", TINY)  # 3 preprocess, 3 phones, 2 score, 1 decision
    assert shm_bound(repository_instances(tmp_path)) == 9 * REGION_SLACK + 3 * c.MAX_UPLOAD_BYTES
    instances = fit_to_node(tmp_path, 16)  # 15, 15, 2, 1
    assert repository_instances(tmp_path) == instances
    bound = shm_bound(instances)
    assert bound == 33 * REGION_SLACK + 15 * c.MAX_UPLOAD_BYTES
    assert shm_warning(tmp_path, bound) is None
    warning = shm_warning(tmp_path, 2 * 1024**3)
    assert warning is not None and "may need 5.8 GiB" in warning and CORES_ENV in warning


def test_a_cpu_repository_is_refused(tmp_path: Path) -> None:
    write_sources(tmp_path, "cpu", TINY)
    before = _files(tmp_path)
    with pytest.raises(ValueError, match="CPU-profile"):
        fit_to_node(tmp_path, 16)
    assert _files(tmp_path) == before


def test_the_engine_build_step_fits_the_repository_it_copies(tmp_path: Path) -> None:
    image, models = tmp_path / "image", tmp_path / "models"
    write_sources(image, "gpu", TINY)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')  # the image's python3: this interpreter
    (bin_dir / "python3").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SYNC_DEFENSE_REPOSITORY_SOURCE": str(image),
           "SYNC_DEFENSE_REPOSITORY": str(models), "SYNC_DEFENSE_ENGINE_CACHE": str(tmp_path / "engines"),
           "SYNC_DEFENSE_TENSORRT": "0", CORES_ENV: "8"}
    result = subprocess.run(["sh", str(ENGINE_BUILD)], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "8 cores: preprocess x7" in result.stdout
    assert _instances(models, c.PREPROCESS) == _instances(models, c.PHONES) == 7
    assert _instances(image, c.PREPROCESS) == DEFAULT_GPU_CORES - 1  # the image's copy is left as it was


def test_the_serve_step_warns_when_shared_memory_is_short(tmp_path: Path) -> None:
    write_sources(tmp_path, "gpu", TINY)
    fit_to_node(tmp_path, 10_000)  # more than any /dev/shm here holds
    run = [sys.executable, "-m", "sync_defense.export.node_cores", "--repository", str(tmp_path), "--check-shm"]
    result = subprocess.run(run, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0 and "warning: /dev/shm holds" in result.stderr and "large uploads may fail" in result.stderr
    fit_to_node(tmp_path, 1)
    result = subprocess.run(run, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0 and "/dev/shm fits" in result.stdout and not result.stderr


def test_the_image_steps_import_without_torch() -> None:
    # The serving image has no torch (deploy/Dockerfile fails the build if it does): its two startup scripts run these.
    code = "import sys; sys.modules['torch'] = None; import sync_defense.export.node_cores, sync_defense.export.tensorrt_engines"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
