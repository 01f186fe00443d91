"""Ensemble step 3: scored pairs -> the verdict and the full JSON answer (rule in ``avsync.decision``)."""

from __future__ import annotations

import json

import numpy as np
import triton_python_backend_utils as pb_utils

from avsync.decision import ScoredVideo, analyse


def _input(request, name: str) -> np.ndarray:
    return pb_utils.get_input_tensor_by_name(request, name).as_numpy()


def _string(value: str) -> np.ndarray:
    return np.array([value.encode()], dtype=np.object_)


class TritonPythonModel:
    def execute(self, requests: list) -> list:
        return [self._respond(request) for request in requests]

    def _respond(self, request) -> pb_utils.InferenceResponse:
        scored = ScoredVideo(
            window_track=_input(request, "WINDOW_TRACK"), window_start=_input(request, "WINDOW_START"),
            window_speech=_input(request, "WINDOW_SPEECH"), window_motion=_input(request, "WINDOW_MOTION"),
            pair_window=_input(request, "PAIR_WINDOW"), pair_shift=_input(request, "PAIR_SHIFT"),
            pair_probability=_input(request, "PAIR_FAKE_PROBABILITY"),
        )
        result = analyse(scored, json.loads(_input(request, "VIDEO_INFO").reshape(-1)[0]))
        probability = np.nan if result["fake_probability"] is None else result["fake_probability"]
        return pb_utils.InferenceResponse([
            pb_utils.Tensor("VERDICT", _string(result["verdict"])),
            pb_utils.Tensor("FAKE_PROBABILITY", np.array([probability], np.float32)),
            pb_utils.Tensor("CONFIDENCE", np.array([result["confidence"]], np.float32)),
            pb_utils.Tensor("RESULT", _string(json.dumps(result))),
        ])
