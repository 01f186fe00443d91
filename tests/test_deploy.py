"""The GPU deployment files: the compose service and the image it builds (no Docker engine here)."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_compose_serves_on_a_gpu_with_a_health_check() -> None:
    service = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["triton"]
    assert (ROOT / service["build"]["context"] / service["build"]["dockerfile"]).exists()
    assert {"8000:8000", "8001:8001", "8002:8002"} <= set(service["ports"])
    devices = service["deploy"]["resources"]["reservations"]["devices"][0]
    assert devices["driver"] == "nvidia" and "gpu" in devices["capabilities"]
    assert "/v2/health/ready" in " ".join(service["healthcheck"]["test"])
    assert any(v.endswith(":/engines") for v in service["volumes"])


def test_image_is_ngc_triton_24_10_with_the_gpu_profile() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "FROM nvcr.io/nvidia/tritonserver:24.10-py3" in dockerfile
    assert "--profile gpu" in dockerfile and "HEALTHCHECK" in dockerfile
    for copied in ("preprocessing", "avsync", "export", "model_repository", "checkpoints", "samples"):
        assert f"COPY {copied} {copied}" in dockerfile and (ROOT / copied).is_dir()
