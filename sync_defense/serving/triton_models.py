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
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

from sync_defense import contract as c
from sync_defense.inference.decision import DecisionConfig
from sync_defense.preprocessing import DEFAULT_CONFIG, landmarks, phones, warm_up

from .decision_step import decide
from .errors import StepError, client_message
from .preprocess_step import preprocess
from .score_step import score
from .watchdog import StubWatchdog, terminate_server

CALIBRATION_FILE = "calibration.json"  # beside model.py in the decision step's version folder


# The Python-backend models of a repository that are not ONNX graphs: the ensemble's steps and the phone decoder.
SPECS = c.python_specs(DEFAULT_CONFIG)


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
        self.spec = SPECS[self.name]
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
    """Runs the pipeline on a worker thread, so that this step's event loop is free for its BLS calls: the
    ``phones`` model, which decodes the speech while the pipeline crops the mouths, and the face graphs
    when it serves them as graphs (parameter ``face_models``: ``graphs``; the default ``mediapipe`` runs
    MediaPipe in this process, the cheaper choice on a CPU node)."""

    name = c.PREPROCESS

    def initialize(self, args: dict) -> None:
        super().initialize(args)
        face_models = _parameter(args, "face_models", "mediapipe")
        if face_models not in c.FACE_MODELS:
            raise ValueError(f"preprocess: face_models must be one of {c.FACE_MODELS}, not {face_models!r}")
        if face_models == "graphs":
            landmarks.use(landmarks.GraphModels(self._run_face_graph))
        phones.use(self._start_phones)
        self.loop: asyncio.AbstractEventLoop | None = None
        warm_up()

    def _on_loop(self, call) -> Future:
        """A BLS coroutine started from the pipeline's threads: the request is made on this step's loop."""
        if self.loop is None:
            raise StepError("another model was called outside a request")
        return asyncio.run_coroutine_threadsafe(call, self.loop)

    def _run_face_graph(self, graph: str, batch: np.ndarray, outputs: Sequence[str]) -> list[np.ndarray]:
        return self._on_loop(_bls(graph, {c.IMAGE: batch}, outputs)).result()

    def _start_phones(self, speech: phones.SpeechSpans) -> Future[phones.Phones]:
        return self._on_loop(_decode_phones(speech))

    async def execute(self, requests: list) -> list:
        self.loop = asyncio.get_running_loop()
        return [await self._respond(r) for r in requests]

    async def _respond(self, request) -> pb_utils.InferenceResponse:
        try:
            return _response(await asyncio.to_thread(preprocess, _inputs(request, self.spec)[c.VIDEO]))
        except Exception as exc:  # one request fails, never the server
            return self._failure(exc)


async def _decode_phones(speech: phones.SpeechSpans) -> phones.Phones:
    labels, start_s, end_s = await _bls(c.PHONES, {c.SPEECH_PCM: speech.pcm, c.SPEECH_SPANS: speech.spans},
                                        [c.PHONE_LABEL, c.PHONE_START_S, c.PHONE_END_S])
    return phones.Phones(tuple(label.decode() for label in labels.reshape(-1)), start_s.reshape(-1), end_s.reshape(-1))


class PhonesModel(_Step):
    """The speech's phones (``preprocessing.phones``) for ``preprocess``, in a process of their own: pocketsphinx
    holds the GIL while it decodes, so here it runs beside the upload's crops and lip mesh, not after them."""

    name = c.PHONES

    def initialize(self, args: dict) -> None:
        super().initialize(args)
        phones.warm_up()

    def execute(self, requests: list) -> list:
        return [self._respond(r) for r in requests]

    def _respond(self, request) -> pb_utils.InferenceResponse:
        try:
            inputs = _inputs(request, self.spec)
            found = phones.decode_speech(phones.SpeechSpans(inputs[c.SPEECH_PCM], inputs[c.SPEECH_SPANS]), DEFAULT_CONFIG)
            return _response({c.PHONE_LABEL: np.array([label.encode() for label in found.labels], dtype=np.object_),
                              c.PHONE_START_S: found.start_s, c.PHONE_END_S: found.end_s})
        except ValueError as exc:  # samples that do not fill their spans: this request breaks the contract
            return self._failure(StepError(str(exc)))
        except Exception as exc:
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
