"""Triton Python-backend adapters: tensors in, a step function, tensors out, one error policy.

The repository's ``model.py`` files are generated one-line imports of these classes
(``python -m sync_defense.export.model_repository``); the work is in the step modules, which are
plain functions tested without a server.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

from sync_defense import contract as c
from sync_defense.inference.decision import DecisionConfig
from sync_defense.preprocessing import DEFAULT_CONFIG, landmarks, warm_up

from .decision_step import decide
from .errors import StepError, client_message
from .preprocess_step import preprocess
from .score_step import score
from .watchdog import StubWatchdog, terminate_server

CALIBRATION_FILE = "calibration.json"  # beside model.py in the decision step's version folder


def _inputs(request, spec: c.ModelSpec) -> dict[str, np.ndarray]:
    return {t.name: pb_utils.get_input_tensor_by_name(request, t.name).as_numpy() for t in spec.inputs}


def _response(outputs: dict[str, np.ndarray]) -> pb_utils.InferenceResponse:
    return pb_utils.InferenceResponse([pb_utils.Tensor(name, value) for name, value in outputs.items()])


def _parameter(args: dict, key: str, default: str) -> str:
    parameters = json.loads(args["model_config"]).get("parameters", {})
    return parameters[key]["string_value"] if key in parameters else default


async def _bls(graph: str, inputs: dict[str, np.ndarray], outputs: Sequence[str]) -> list[np.ndarray]:
    """One request to another model of the server, its outputs in CPU memory; its failure is this step's error."""
    response = await pb_utils.InferenceRequest(
        model_name=graph, inputs=[pb_utils.Tensor(k, v) for k, v in inputs.items()],
        requested_output_names=list(outputs), preferred_memory=pb_utils.PreferredMemory(pb_utils.TRITONSERVER_MEMORY_CPU, 0),
    ).async_exec()
    if response.has_error():
        raise StepError(f"{graph} failed: {response.error().message()}")
    return [pb_utils.get_output_tensor_by_name(response, name).as_numpy() for name in outputs]


class _Step:
    """What every step shares: its contract, the stub watchdog, and turning an exception into that request's error."""

    name: str

    def initialize(self, args: dict) -> None:
        self.spec = c.step_specs(DEFAULT_CONFIG)[self.name]
        self.version_dir = Path(args["model_repository"]) / args["model_version"]
        server = os.getppid()
        self.watchdog = StubWatchdog(server, terminate_server(server, pb_utils.Logger.log_error)).start()

    def finalize(self) -> None:
        self.watchdog.stop()

    def _failure(self, exc: BaseException) -> pb_utils.InferenceResponse:
        message, log = client_message(self.name, exc)
        if log is not None:
            pb_utils.Logger.log_error(log)
        return pb_utils.InferenceResponse(error=pb_utils.TritonError(message))


class PreprocessModel(_Step):
    """Runs the pipeline on a worker thread, so that this step's event loop is free for the face graphs'
    BLS calls when it serves them as graphs (parameter ``face_models``: ``graphs``; the default
    ``mediapipe`` runs MediaPipe in this process, the cheaper choice on a CPU node)."""

    name = c.PREPROCESS

    def initialize(self, args: dict) -> None:
        super().initialize(args)
        face_models = _parameter(args, "face_models", "mediapipe")
        if face_models not in c.FACE_MODELS:
            raise ValueError(f"preprocess: face_models must be one of {c.FACE_MODELS}, not {face_models!r}")
        if face_models == "graphs":
            landmarks.use(landmarks.GraphModels(self._run_face_graph))
        self.loop: asyncio.AbstractEventLoop | None = None
        warm_up()

    def _run_face_graph(self, graph: str, batch: np.ndarray, outputs: Sequence[str]) -> list[np.ndarray]:
        """A face graph through BLS, called from the pipeline's threads: the request is made on the loop."""
        if self.loop is None:
            raise StepError("the face graphs are called outside a request")
        return asyncio.run_coroutine_threadsafe(_bls(graph, {c.IMAGE: batch}, outputs), self.loop).result()

    async def execute(self, requests: list) -> list:
        self.loop = asyncio.get_running_loop()
        return [await self._respond(r) for r in requests]

    async def _respond(self, request) -> pb_utils.InferenceResponse:
        try:
            return _response(await asyncio.to_thread(preprocess, _inputs(request, self.spec)[c.VIDEO]))
        except Exception as exc:  # one request fails, never the server
            return self._failure(exc)


class ScoreModel(_Step):
    """Sends the pairs to the three graphs by BLS (async, so chunks of one upload run at once).

    An upload whose client has gone (a gRPC cancel or deadline) is not scored. Triton 2.51 flags the
    cancellation on the ensemble's next step only, never on the one running
    (triton-inference-server/server#6739): ``preprocess`` cannot see it, ``score`` can.
    """

    name = c.SCORE

    async def _run_graph(self, graph: str, inputs: dict[str, np.ndarray], output: str) -> np.ndarray:
        return (await _bls(graph, inputs, [output]))[0]

    async def execute(self, requests: list) -> list:
        return list(await asyncio.gather(*(self._respond(r) for r in requests)))

    async def _respond(self, request) -> pb_utils.InferenceResponse:
        if request.is_cancelled():
            return pb_utils.InferenceResponse(error=pb_utils.TritonError("the client cancelled the request",
                                                                         pb_utils.TritonError.CANCELLED))
        try:
            return _response(await score(_inputs(request, self.spec), self._run_graph))
        except Exception as exc:
            return self._failure(exc)


class DecisionModel(_Step):
    name = c.DECISION

    def initialize(self, args: dict) -> None:
        super().initialize(args)
        self.cfg = DecisionConfig.from_calibration(self.version_dir / CALIBRATION_FILE)

    def execute(self, requests: list) -> list:
        return [self._respond(r) for r in requests]

    def _respond(self, request) -> pb_utils.InferenceResponse:
        try:
            return _response(decide(_inputs(request, self.spec), self.cfg))
        except Exception as exc:
            return self._failure(exc)
