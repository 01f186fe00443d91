"""A Triton Python-backend model that runs its ONNX graph in ONNX Runtime.

The CPU profile needs it because the ``tritonserver`` wheel used on CPU machines has no ONNX
Runtime backend. All requests of a dynamic batch go through one ``session.run``: batching is the
point of the step.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

from sync_defense.onnx_session import onnx_session

from .errors import internal_error


class OnnxGraphModel:
    """Loads ``<version>/model.onnx``; inputs and outputs are named as in ``config.pbtxt``."""

    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        self.name = config["name"]
        self.inputs = [t["name"] for t in config["input"]]
        self.outputs = [t["name"] for t in config["output"]]
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.session = onnx_session(Path(args["model_repository"]) / args["model_version"] / "model.onnx", params)

    def execute(self, requests: list) -> list:
        """The batch in one run; a failure fails the batch's requests with an incident id, never a traceback."""
        try:
            return self._run(requests)
        except Exception as exc:
            message, log = internal_error(self.name, exc)
            pb_utils.Logger.log_error(log)
            return [pb_utils.InferenceResponse(error=pb_utils.TritonError(message)) for _ in requests]

    def _run(self, requests: list) -> list:
        feeds = {
            name: [pb_utils.get_input_tensor_by_name(r, name).as_numpy() for r in requests] for name in self.inputs
        }
        sizes = [len(a) for a in feeds[self.inputs[0]]]
        results = self.session.run(self.outputs, {name: np.concatenate(parts) for name, parts in feeds.items()})
        bounds = np.cumsum(sizes)[:-1]
        per_output = [np.split(result, bounds) for result in results]
        return [
            pb_utils.InferenceResponse([pb_utils.Tensor(name, per_output[j][i]) for j, name in enumerate(self.outputs)])
            for i in range(len(requests))
        ]
