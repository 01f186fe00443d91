"""CPU profile: this step's ONNX graph (model.onnx beside this file) run in ONNX Runtime."""

from serving.onnx_runtime_model import OnnxRuntimeModel as TritonPythonModel

__all__ = ["TritonPythonModel"]
