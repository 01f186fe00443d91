"""Run every served model of a built repository in this interpreter, as Triton's Python backend would,
then print the modules loaded: ``python served_step_probe.py REPOSITORY VIDEO CONFIGS_JSON``.

Each model's generated ``model.py`` is loaded from the repository, ``initialize`` d with the arguments
the backend passes, and one upload goes through ``execute`` of preprocess (whose BLS call reaches the
phones model loaded here), score (whose BLS calls reach the three graph models) and decision. So an
import made inside a function that the steps call at start-up or on a request is seen, not only those
at the top of a module. Run by ``tests/test_layers.py`` in a fresh interpreter. ``triton_python_backend_utils`` exists only inside the
server's stub; the few names the steps use are given here, routing requests between the models.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import runpy
import sys
import types
from pathlib import Path

import numpy as np


class Tensor:
    def __init__(self, name: str, value: np.ndarray) -> None:
        self._name, self._value = name, np.asarray(value)

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> np.ndarray:
        return self._value


class TritonError:
    CANCELLED = 1

    def __init__(self, message: str, code: int | None = None) -> None:
        self._message = message

    def message(self) -> str:
        return self._message


class InferenceResponse:
    def __init__(self, output_tensors: list[Tensor] | None = None, error: TritonError | None = None) -> None:
        self.output_tensors, self._error = output_tensors or [], error

    def has_error(self) -> bool:
        return self._error is not None

    def error(self) -> TritonError | None:
        return self._error


MODELS: dict[str, object] = {}


class InferenceRequest:
    """A request to a model loaded here (the steps' BLS calls)."""

    def __init__(self, model_name: str = "", inputs: list[Tensor] | None = None, requested_output_names=None, **_: object) -> None:
        self.model_name, self.inputs = model_name, inputs or []

    def is_cancelled(self) -> bool:
        return False

    async def async_exec(self) -> InferenceResponse:
        return (await run(self.model_name, [self]))[0]


def _by_name(tensors: list[Tensor], name: str) -> Tensor:
    return next(t for t in tensors if t.name() == name)


async def run(name: str, requests: list[InferenceRequest]) -> list[InferenceResponse]:
    responses = MODELS[name].execute(requests)
    return await responses if inspect.isawaitable(responses) else responses


def backend_utils() -> types.ModuleType:
    module = types.ModuleType("triton_python_backend_utils")
    module.Tensor, module.TritonError = Tensor, TritonError
    module.InferenceResponse, module.InferenceRequest = InferenceResponse, InferenceRequest
    module.get_input_tensor_by_name = lambda request, name: _by_name(request.inputs, name)
    module.get_output_tensor_by_name = lambda response, name: _by_name(response.output_tensors, name)
    module.PreferredMemory = lambda *args: args
    module.TRITONSERVER_MEMORY_CPU = 0
    module.Logger = types.SimpleNamespace(log_error=print, log_info=print, log_warn=print, log_verbose=print)
    return module


def main(repository: Path, video: Path, configs: dict[str, str]) -> None:
    sys.modules["triton_python_backend_utils"] = backend_utils()
    for name, config in configs.items():
        model = runpy.run_path(str(repository / name / "1" / "model.py"))["TritonPythonModel"]()
        model.initialize({"model_repository": str(repository / name), "model_version": "1", "model_config": config})
        MODELS[name] = model
    tensors = {"VIDEO": np.array([video.read_bytes()], dtype=object)}
    for step in ("preprocess", "score", "decision"):
        inputs = [Tensor(t["name"], tensors[t["name"]]) for t in json.loads(configs[step])["input"]]
        (response,) = asyncio.run(run(step, [InferenceRequest(step, inputs)]))
        if response.has_error():
            raise SystemExit(f"{step}: {response.error().message()}")
        tensors.update({t.name(): t.as_numpy() for t in response.output_tensors})
    print(json.dumps({"result": json.loads(tensors["RESULT"][0]), "modules": sorted(sys.modules)}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), json.loads(Path(sys.argv[3]).read_text()))
