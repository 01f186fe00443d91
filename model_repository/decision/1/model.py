"""Ensemble step 4: per-window fake probabilities -> the video's verdict (rule in avsync.decision)."""

from __future__ import annotations

import numpy as np
import triton_python_backend_utils as pb_utils

from avsync.decision import decide


def _input(request, name: str) -> np.ndarray:
    return pb_utils.get_input_tensor_by_name(request, name).as_numpy()


class TritonPythonModel:
    def execute(self, requests: list) -> list:
        responses = []
        for request in requests:
            decision = decide(
                _input(request, "WINDOW_FAKE_PROBABILITY"),
                _input(request, "WINDOW_SPEECH"),
                bool(_input(request, "FACE_FOUND").reshape(-1)[0]),
            )
            responses.append(pb_utils.InferenceResponse([
                pb_utils.Tensor("VERDICT", np.array([decision.verdict.encode()], dtype=np.object_)),
                pb_utils.Tensor("FAKE_PROBABILITY", np.array([decision.fake_probability], np.float32)),
                pb_utils.Tensor("CONFIDENCE", np.array([decision.confidence], np.float32)),
            ]))
        return responses
