"""The ONNX Runtime session of a graph on CPU, built one way for the served step and the benchmarks that time it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import onnxruntime as ort


def cpu_session(path: Path, parameters: Mapping[str, str]) -> ort.InferenceSession:
    """``path``'s graph under a model config's ``parameters`` (``intra_op_threads``, ``allow_spinning``)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(parameters.get("intra_op_threads", "1"))
    options.inter_op_num_threads = 1
    # ORT's idle pool threads spin for work by default; on a node whose cores the preprocess steps and the
    # other graph keep busy, that spinning burns the CPU they need (config ``allow_spinning``, "0" here).
    options.add_session_config_entry("session.intra_op.allow_spinning", parameters.get("allow_spinning", "1"))
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
