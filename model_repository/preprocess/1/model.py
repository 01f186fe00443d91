"""Ensemble step 1: the uploaded file -> mouth-crop and log-mel windows (the shared preprocessing).

A bad upload fails its own request with the reason; the other requests of the batch go on.
"""

from __future__ import annotations

import numpy as np
import triton_python_backend_utils as pb_utils

from preprocessing import DEFAULT_CONFIG, MediaError, PreprocessedVideo, preprocess_video, warm_up


def _placeholder_window(video: PreprocessedVideo) -> PreprocessedVideo:
    """One all-zero window for a video without a face.

    The ensemble's graph is static and the batched encoders accept no empty batch, so a faceless
    video still sends one window; ``FACE_FOUND = false`` makes the decision step ignore its score.
    """
    cfg = DEFAULT_CONFIG
    return PreprocessedVideo(
        visual=np.zeros((1, 3, cfg.clip_frames, cfg.crop_size, cfg.crop_size), np.float32),
        audio=np.zeros((1, 1, cfg.n_mels, cfg.mel_frames), np.float32),
        window_start_s=np.zeros(1, np.float32),
        window_speech=np.zeros(1, np.float32),
        face_found=False,
        duration_s=video.duration_s,
    )


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
        if not video.face_found:
            video = _placeholder_window(video)
        return pb_utils.InferenceResponse([
            pb_utils.Tensor("MOUTHS", video.visual),
            pb_utils.Tensor("MELS", video.audio),
            pb_utils.Tensor("WINDOW_START_S", video.window_start_s),
            pb_utils.Tensor("WINDOW_SPEECH", video.window_speech),
            pb_utils.Tensor("FACE_FOUND", np.array([video.face_found])),
            pb_utils.Tensor("DURATION_S", np.array([video.duration_s], np.float32)),
        ])
