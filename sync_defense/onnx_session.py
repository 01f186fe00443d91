"""Every ONNX Runtime session of the project, built one way: served graphs, the VAD, parity checks, benchmarks.

It sits below every layer (onnxruntime is its only dependency) so that preprocessing, serving and
export build their sessions through it instead of each choosing threads and providers itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import onnxruntime as ort

CPU = ("CPUExecutionProvider",)
SINGLE_THREAD = {"intra_op_threads": "1", "allow_spinning": "0"}  # one core's worth, never spinning: the served CPU steps


def onnx_session(path: Path, parameters: Mapping[str, str] | None = None, providers: Sequence[str] = CPU) -> ort.InferenceSession:
    """``path``'s graph on ``providers``. ``parameters`` are a model config's (``intra_op_threads``,
    ``allow_spinning``); ``None`` leaves ONNX Runtime's defaults (all cores), as offline checks want."""
    options = ort.SessionOptions()
    if parameters is not None:
        options.intra_op_num_threads = int(parameters.get("intra_op_threads", "1"))
        options.inter_op_num_threads = 1
        # ORT's idle pool threads spin for work by default; on a node whose cores the preprocess steps and the
        # other graph keep busy, that spinning burns the CPU they need (config ``allow_spinning``, "0" here).
        options.add_session_config_entry("session.intra_op.allow_spinning", parameters.get("allow_spinning", "1"))
    return ort.InferenceSession(str(path), options, providers=list(providers))
