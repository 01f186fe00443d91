"""Running the model repository: the ONNX Runtime step of the CPU profile and a local Triton launcher."""
