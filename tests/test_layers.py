"""The layers stay apart: what the server imports never pulls in torch or training code."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

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


@pytest.mark.parametrize("model_py", sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "model_repository").glob("*/1/model.py")))
def test_served_models_import_no_torch_or_training(model_py: str) -> None:
    code = f"import runpy; runpy.run_path({str(ROOT / model_py)!r})"
    assert forbidden(imported_after(code)) == []


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
