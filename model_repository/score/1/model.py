"""Ensemble step 2: the fake probability of every (mouth window, audio shift) pair, by BLS calls to
``visual_encoder``, ``audio_encoder`` and ``fusion_classifier``.

Why a BLS step and not three more ensemble steps: one upload brings faces x windows plus the
offset search's shifted pairs — a few dozen for a short clip, hundreds for a long one with
several faces — more than the graphs' ``max_batch_size`` and a different count every time. This
step cuts them into chunks of at most ``max_batch`` rows and sends the chunks as separate
requests at once, so Triton's dynamic batcher merges them with other uploads' chunks. Each mouth
window is encoded once and each distinct audio window once, however many pairs share them.
"""

from __future__ import annotations

import asyncio

import numpy as np
import triton_python_backend_utils as pb_utils

from preprocessing import DEFAULT_CONFIG
from preprocessing.windows import audio_windows, normalise_crops, pair_audio_starts

CONCURRENT_CHUNKS = 2  # per modality and upload: bounds the float32 copies held at once


def _input(request, name: str) -> np.ndarray:
    return pb_utils.get_input_tensor_by_name(request, name).as_numpy()


class ScoringError(RuntimeError):
    """A graph refused a chunk; the upload's request fails with its message."""


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        self.cfg = DEFAULT_CONFIG
        self.on_cpu = pb_utils.PreferredMemory(pb_utils.TRITONSERVER_MEMORY_CPU, 0)

    async def execute(self, requests: list) -> list:
        return list(await asyncio.gather(*(self._respond(r) for r in requests)))

    async def _respond(self, request) -> pb_utils.InferenceResponse:
        try:
            probability = await self._score(request)
        except ScoringError as exc:
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc)))
        return pb_utils.InferenceResponse([pb_utils.Tensor("PAIR_FAKE_PROBABILITY", probability)])

    async def _score(self, request) -> np.ndarray:
        crops, mel = _input(request, "MOUTH_CROPS"), _input(request, "MEL")
        pair_window, pair_shift = _input(request, "PAIR_WINDOW"), _input(request, "PAIR_SHIFT")
        if not len(pair_window):
            return np.zeros(0, np.float32)
        audio_starts, audio_row = np.unique(pair_audio_starts(_input(request, "WINDOW_START"), pair_window, pair_shift),
                                            return_inverse=True)
        visual_tokens, audio_tokens = await asyncio.gather(
            self._map("visual_encoder", len(crops), lambda s: {"MOUTHS": normalise_crops(crops[s], self.cfg)}, "VISUAL_TOKENS"),
            self._map("audio_encoder", len(audio_starts), lambda s: {"MELS": audio_windows(mel, audio_starts[s], self.cfg)},
                      "AUDIO_TOKENS"),
        )
        audio_row = audio_row.reshape(-1)
        probability = await self._map(
            "fusion_classifier", len(pair_window),
            lambda s: {"VISUAL_TOKENS": visual_tokens[pair_window[s]], "AUDIO_TOKENS": audio_tokens[audio_row[s]]},
            "WINDOW_FAKE_PROBABILITY",
        )
        return probability.reshape(-1).astype(np.float32)

    async def _map(self, model: str, rows: int, inputs, output: str) -> np.ndarray:
        """``output`` of ``model`` for rows ``0 .. rows-1``, chunk by chunk; ``inputs(slice)`` builds a chunk."""
        limit = asyncio.Semaphore(CONCURRENT_CHUNKS)

        async def chunk(s: slice) -> np.ndarray:
            async with limit:
                tensors = [pb_utils.Tensor(name, np.ascontiguousarray(value)) for name, value in inputs(s).items()]
                response = await pb_utils.InferenceRequest(
                    model_name=model, inputs=tensors, requested_output_names=[output], preferred_memory=self.on_cpu,
                ).async_exec()
            if response.has_error():
                raise ScoringError(f"{model} failed: {response.error().message()}")
            return pb_utils.get_output_tensor_by_name(response, output).as_numpy()

        step = self.cfg.max_batch
        return np.concatenate(await asyncio.gather(*(chunk(slice(i, i + step)) for i in range(0, rows, step))))
