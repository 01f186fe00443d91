"""Ensemble step 1: the uploaded file -> every face's mouth windows, the clip's log-mel, the pairs to score.

The shared preprocessing (``preprocessing.preprocess_video``) does the work; this step only moves
its arrays into tensors. A bad upload fails its own request with the reason; the other requests
of the batch go on.
"""

from __future__ import annotations

import numpy as np
import triton_python_backend_utils as pb_utils

from preprocessing import MediaError, PreparedVideo, preprocess_video, warm_up


def _tensors(video: PreparedVideo) -> list:
    return [
        pb_utils.Tensor("MOUTH_CROPS", video.crops),
        pb_utils.Tensor("MEL", video.mel),
        pb_utils.Tensor("WINDOW_TRACK", video.window_track),
        pb_utils.Tensor("WINDOW_START", video.window_start),
        pb_utils.Tensor("WINDOW_SPEECH", video.window_speech),
        pb_utils.Tensor("WINDOW_MOTION", video.window_motion),
        pb_utils.Tensor("PAIR_WINDOW", video.pair_window),
        pb_utils.Tensor("PAIR_SHIFT", video.pair_shift),
        pb_utils.Tensor("VIDEO_INFO", np.array([video.info_json().encode()], dtype=np.object_)),
    ]


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        self.logger = pb_utils.Logger
        warm_up()

    def execute(self, requests: list) -> list:
        return [self._respond(request) for request in requests]

    def _respond(self, request) -> pb_utils.InferenceResponse:
        upload = pb_utils.get_input_tensor_by_name(request, "VIDEO").as_numpy().reshape(-1)
        try:
            if upload.size != 1:
                raise MediaError(f"send exactly one video per request (got {upload.size})")
            video = preprocess_video(bytes(upload[0]))
        except MediaError as exc:
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(f"bad video: {exc}"))
        except Exception as exc:  # a bug must fail this request only, never the server
            self.logger.log_error(f"preprocess failed: {exc!r}")
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(f"preprocessing failed: {exc!r}"))
        return pb_utils.InferenceResponse(_tensors(video))
