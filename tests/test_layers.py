"""The layers stay apart: what the server imports never pulls in torch or training code."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2 as mc

from sync_defense.contract import VERDICTS
from sync_defense.export.model_repository import build_repository

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN_IN_SERVER = ("torch", "sklearn", "sync_defense.model", "sync_defense.offline.training", "sync_defense.offline.synthetic",
                       "sync_defense.offline.realdata", "sync_defense.export", "devtools", "benchmarks")


def imported_after(code: str) -> set[str]:
    """Module names loaded by a fresh interpreter that runs ``code`` (``triton_python_backend_utils`` stubbed
    as an empty module: it exists only inside the server's stub process)."""
    probe = (
        "import sys, types, json; sys.modules['triton_python_backend_utils'] = types.ModuleType('triton_python_backend_utils');"
        f"{code}; print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    return set(json.loads(out.splitlines()[-1]))


def forbidden(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == f or m.startswith(f + ".") for f in FORBIDDEN_IN_SERVER))


def served_modules(repository: Path, video: Path, cwd: Path = ROOT) -> set[str]:
    """Modules loaded by a fresh interpreter that initialises every served model of ``repository`` and
    runs one upload through ``execute`` of each step (``served_step_probe.py``): imports made inside
    functions are seen too, not only those at the top of a module."""
    configs = {}
    for config_file in repository.glob("*/config.pbtxt"):
        config = text_format.Parse(config_file.read_text(), mc.ModelConfig())
        if config.platform != "ensemble":
            configs[config.name] = json.dumps(json_format.MessageToDict(config, preserving_proto_field_name=True))
    config_file = repository / "probe_configs.json"
    config_file.write_text(json.dumps(configs))
    probe = [sys.executable, str(ROOT / "tests" / "served_step_probe.py"), str(repository), str(video), str(config_file)]
    out = subprocess.run(probe, capture_output=True, text=True, check=True, cwd=cwd,
                         env={**os.environ, "PYTHONPATH": str(cwd)}).stdout
    report = json.loads(out.splitlines()[-1])
    assert report["result"]["verdict"] in VERDICTS  # the upload went through every step
    return set(report["modules"])


@pytest.fixture(scope="module")
def cpu_repository(onnx_dir: Path, model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_repository("cpu", model.config, onnx_dir, tmp_path_factory.mktemp("layers") / "model_repository")


@pytest.fixture(scope="module")
def video(talking_mp4: bytes, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("layers") / "talking.mp4"
    path.write_bytes(talking_mp4)
    return path


def test_served_models_import_no_torch_or_training_even_inside_functions(cpu_repository: Path, video: Path) -> None:
    assert forbidden(served_modules(cpu_repository, video)) == []


def test_the_probe_catches_an_import_made_inside_a_step_function(cpu_repository: Path, video: Path, tmp_path: Path) -> None:
    """A copy of the package whose decision step imports torch inside ``decide``, only when a request comes."""
    shutil.copytree(ROOT / "sync_defense", tmp_path / "sync_defense", ignore=shutil.ignore_patterns("__pycache__"))
    step = tmp_path / "sync_defense" / "serving" / "decision_step.py"
    lines = step.read_text().splitlines(keepends=True)
    docstring = next(i for i, line in enumerate(lines) if line.startswith("def decide(")) + 1  # a one-line docstring
    assert lines[docstring].strip().startswith('"""') and lines[docstring].strip().endswith('"""')
    lines.insert(docstring + 1, "    import torch  # noqa: F401  (planted)\n")
    step.write_text("".join(lines))
    modules = served_modules(cpu_repository, video, cwd=tmp_path)
    assert "sync_defense.serving.decision_step" in modules and "torch" in forbidden(modules)


def test_client_imports_no_server_side_code() -> None:
    modules = imported_after("import sync_defense.client, sync_defense.client.cli")
    assert forbidden(modules) == []
    server_side = ("sync_defense.preprocessing", "sync_defense.serving")
    assert not any(m.split(".")[0] in ("cv2", "av", "librosa") or m.startswith(server_side) for m in modules)


def test_the_probe_sees_a_forbidden_import() -> None:
    """The check above could fail: the PyTorch reference is in ``inference`` and does pull torch in."""
    assert "torch" in forbidden(imported_after("import sync_defense.serving.reference"))


def test_the_wheel_installs_one_top_level_package(tmp_path: Path) -> None:
    """Nothing generic (``client``, ``export``, ...) lands in site-packages: only ``sync_defense``."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True)
    (wheel,) = tmp_path.glob("sync_defense-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
        names = set(archive.namelist())
    assert {t for t in tops if not t.endswith(".dist-info")} == {"sync_defense"}
    assert {"sync_defense/preprocessing/pipeline.py", "sync_defense/client/cli.py", "sync_defense/export/onnx_export.py"} <= names
    assert not any(n.startswith(("sync_defense/devtools", "sync_defense/benchmarks")) for n in names)
