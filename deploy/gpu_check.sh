#!/usr/bin/env bash
# The GPU check, prepared for a lent GPU machine (no Docker, pip, a copy of this working tree, $OUT collected after
# each command, about ten minutes per command): run its phases as separate commands, in this order, as time allows.
#
#   deploy/gpu_check.sh install    # a venv with torch, ONNX Runtime GPU, TensorRT 10.5.0 (the image's), the server wheels
#   deploy/gpu_check.sh build      # ONNX graphs (encoders and face graphs), a GPU-profile repository, TensorRT plans
#   deploy/gpu_check.sh bench      # graph_speed (tiny, base) and face_graph_speed (TensorRT against ONNX Runtime), NVDEC test
#   deploy/gpu_check.sh serve      # cpu_budget, and the load suite on the server the nvidia-pytriton wheel can run
#   deploy/gpu_check.sh all        # all four in one go (longer than one command may run)
#
# The GPU machine this project's sessions are lent has no registries, no TensorRT and no Triton, but a python3 with
# torch (CUDA), onnx and onnxruntime. For it, one command that needs nothing installed:
#
#   deploy/gpu_check.sh prepare-lent   # here: build/lent/ gets the wheels it lacks (PyAV, tflite), the face models'
#                                      # .tflite files, the sample's face-graph inputs and the 10-s test video
#   deploy/gpu_check.sh lent           # there, with build/lent carried: graph_speed (PyTorch FP32/FP16, tiny and base),
#                                      # face_graph_speed (PyTorch FP32/FP16 and FP16's distance from FP32), decode_speed (NVDEC)
#
# Every step's log goes to $OUT/logs/; $OUT/summary.md holds every step run so far on this machine (kept in
# build/gpu_check/ between commands), with its exit status and time. A failed step is recorded and the phase goes
# on, so one command reports as much as it can. The nvidia-pytriton wheel's tritonserver has only the Python
# backend: the GPU-profile repository (onnxruntime_onnx, tensorrt_plan) cannot be served by it, so `serve` runs the
# CPU profile (its graphs in ONNX Runtime inside Python-backend models) and says so in the summary.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
STATE="$ROOT/build/gpu_check"
OUT=${OUT:-$STATE/out}
VENV="$STATE/venv"
ONNX="$STATE/onnx"
REPOSITORY="$STATE/repository"
CACHE="$STATE/engines"
SAMPLE="$ROOT/samples/talking_head.mp4"
TENSORRT_VERSION=${TENSORRT_VERSION:-10.5.0}  # the release of nvcr.io/nvidia/tritonserver:24.10-py3
ORT_GPU_SPEC=${ORT_GPU_SPEC:-onnxruntime-gpu}
PRECISION=${PRECISION:-fp16}  # the encoders' plans; the face graphs' are FP32 whatever this says
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$STATE" "$OUT/logs"

summary() {
    printf '%s\n' "$*" >>"$STATE/summary.md"
}

# step NAME COMMAND...: run it (a function stops at its first failure) with its output in $OUT/logs/NAME.log; record
# its status and time, and go on with the phase whatever it was.
step() {
    local name=$1 started status
    shift
    started=$(date +%s)
    echo "== $name: $*"
    set +e
    (set -e; "$@") >"$OUT/logs/$name.log" 2>&1
    status=$?
    set -e
    summary "- $name: $([ "$status" -eq 0 ] && echo ok || echo "FAILED (exit $status)") in $(($(date +%s) - started)) s: \`$*\`"
    tail -n 5 "$OUT/logs/$name.log"
    return 0
}

finish() {
    cp "$STATE/summary.md" "$OUT/summary.md" 2>/dev/null || true
}
trap finish EXIT

py() {
    "$VENV/bin/python" "$@"
}

# The CUDA, cuDNN and TensorRT libraries that pip put in the venv, for ONNX Runtime's CUDA provider and for the
# engine-build step's ctypes loads (libcudart.so.12, libnvinfer.so.10).
library_path() {
    local dirs
    dirs=$(find "$VENV" -path '*/site-packages/nvidia/*/lib' -type d -printf '%p:' 2>/dev/null || true)
    dirs+=$(find "$VENV" -path '*/site-packages/tensorrt_libs' -type d -printf '%p:' 2>/dev/null || true)
    export LD_LIBRARY_PATH="${dirs}${LD_LIBRARY_PATH:-}"
}

machine() {
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv
    nproc
    python3 --version
    ls /usr/lib/x86_64-linux-gnu/libnvcuvid.so.1 /usr/lib64/libnvcuvid.so.1 2>/dev/null || echo "libnvcuvid.so.1 not in the usual places (NVDEC needs it)"
}

install_venv() {
    python3 -m venv "$VENV"
    py -m pip install -q --upgrade pip
    py -m pip install -q -e ".[model,cpu-server]" fastapi uvicorn pytest
    # As the Makefile does: their declared dependencies would replace numpy and protobuf, or pull torchaudio.
    py -m pip install -q --no-deps silero-vad==6.2.3 mediapipe==0.10.21
}

install_onnxruntime_gpu() {
    py -m pip uninstall -y -q onnxruntime  # the CPU package and the GPU one share the module name
    py -m pip install -q "$ORT_GPU_SPEC"
}

versions() {
    library_path
    py - <<'PY'
import importlib.metadata as metadata

import av.codec.hwaccel
import onnxruntime as ort
import torch

for name in ("torch", "onnxruntime-gpu", "tensorrt-cu12", "nvidia-pytriton", "tritonclient", "av", "mediapipe"):
    try:
        print(name, metadata.version(name))
    except metadata.PackageNotFoundError:
        print(name, "not installed")
print("onnxruntime providers", ort.get_available_providers())
print("PyAV hardware devices", av.codec.hwaccel.hwdevices_available())
print("torch CUDA", torch.version.cuda, torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")
PY
}

pytriton_backends() {
    local backends
    backends=$(py -c 'import pathlib, pytriton; print(pathlib.Path(pytriton.__file__).parent / "tritonserver" / "backends")')
    ls "$backends"
    if [ ! -d "$backends/onnxruntime" ] && [ ! -d "$backends/tensorrt" ]; then
        echo "no onnxruntime or tensorrt backend in $backends: the GPU-profile repository cannot be served here"
    fi
}

phase_install() {
    summary "## install ($(date -u +%FT%TZ))"
    step machine machine
    step install_venv install_venv
    step install_onnxruntime_gpu install_onnxruntime_gpu
    step install_tensorrt py -m pip install -q "tensorrt-cu12==$TENSORRT_VERSION"
    step versions versions
    step pytriton_backends pytriton_backends
}

phase_build() {
    summary "## build ($(date -u +%FT%TZ))"
    library_path
    step export_encoders py -m sync_defense.export.onnx_export --out "$ONNX"
    step export_face_graphs py -m sync_defense.export.tflite_graphs --out "$ONNX"
    rm -rf "$REPOSITORY"
    step gpu_repository py -m sync_defense.export.model_repository --profile gpu --onnx "$ONNX" --out "$REPOSITORY" --cores "$(nproc)"
    step tensorrt_engines py -m sync_defense.export.tensorrt_engines --repository "$REPOSITORY" --cache "$CACHE" --precision "$PRECISION"
    step tensorrt_engines_cached py -m sync_defense.export.tensorrt_engines --repository "$REPOSITORY" --cache "$CACHE" --precision "$PRECISION"
    mkdir -p "$OUT/plans"
    cp "$CACHE"/*.json "$OUT/plans/" 2>/dev/null || true
    grep -l tensorrt_plan "$REPOSITORY"/*/config.pbtxt >"$OUT/plans/served_by_tensorrt.txt" || true
}

phase_bench() {
    summary "## bench ($(date -u +%FT%TZ))"
    library_path
    step graph_speed py -m benchmarks.graph_speed --device cuda --configs tiny base --out "$OUT/graph_speed.json"
    step face_graph_speed py -m benchmarks.face_graph_speed --onnx "$ONNX" --repository "$REPOSITORY" --out "$OUT/face_graph_speed.json"
    step nvdec_test py -m pytest -q -p no:cacheprovider tests/test_decode.py -k "cuda or hardware"
}

phase_serve() {
    summary "## serve ($(date -u +%FT%TZ))"
    summary "- note: nvidia-pytriton's tritonserver has no onnxruntime/tensorrt backend; the load suite serves the CPU profile"
    library_path
    step cpu_budget py -m benchmarks.cpu_budget "$SAMPLE" --onnx "$ONNX" --cores "$(nproc)"
    step load_suite py -m benchmarks.load_suite --out "$OUT/load_suite" --quick --sections closed-loop length
    step load_suite_perf py -m benchmarks.load_suite --out "$OUT/load_suite_perf" --quick --sections perf --perf-protocols grpc
}

LENT="$ROOT/build/lent"
LENT_VIDEO="$ROOT/build/perf/videos/talking_640x480_10s.mp4"
LENT_PYTHON=3.12  # the lent machine's python3

prepare_lent() {
    local mediapipe
    rm -rf "$LENT" && mkdir -p "$LENT"
    mediapipe=$("$ROOT/.venv/bin/python" -c 'import importlib.util; print(importlib.util.find_spec("mediapipe").submodule_search_locations[0])')
    cp "$mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite" \
        "$mediapipe/modules/face_landmark/face_landmark_with_attention.tflite" "$LENT/"
    "$ROOT/.venv/bin/python" -m benchmarks.face_graph_speed --save-feeds "$LENT/face_feeds.npz"
    [ -f "$LENT_VIDEO" ] || "$ROOT/.venv/bin/python" -m benchmarks.videos --out "$(dirname "$LENT_VIDEO")"
    cp "$LENT_VIDEO" "$LENT/"
    "$ROOT/.venv/bin/python" -m pip download -q --no-deps --only-binary=:all: --python-version "$LENT_PYTHON" --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$LENT" \
        "av==$("$ROOT/.venv/bin/python" -c 'import av; print(av.__version__)')" tflite==2.18.0
    du -sh "$LENT"
}

phase_lent() {
    summary "## lent ($(date -u +%FT%TZ))"
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/lent-site "$LENT"/*.whl
    export PYTHONPATH="/tmp/lent-site:$ROOT"
    step machine machine
    step graph_speed python3 -m benchmarks.graph_speed --device cuda --configs tiny base --out "$OUT/graph_speed.json"
    step face_graph_speed python3 -m benchmarks.face_graph_speed --onnx "$LENT" --feeds "$LENT/face_feeds.npz" --tflite "$LENT" \
        --out "$OUT/face_graph_speed.json"
    step decode_speed python3 -m benchmarks.decode_speed "$SAMPLE" "$LENT/$(basename "$LENT_VIDEO")" --out "$OUT/decode_speed.json"
}

main() {
    [ $# -gt 0 ] || set -- all
    for phase in "$@"; do
        case $phase in
            install) phase_install ;;
            build) phase_build ;;
            bench) phase_bench ;;
            serve) phase_serve ;;
            all) phase_install; phase_build; phase_bench; phase_serve ;;
            prepare-lent) prepare_lent ;;
            lent) phase_lent ;;
            *) echo "usage: $0 [install|build|bench|serve|all|prepare-lent|lent]..." >&2; exit 2 ;;
        esac
    done
}

main "$@"
