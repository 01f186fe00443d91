"""Checkpoint -> ONNX graphs -> Triton model repositories (CPU and GPU profiles)."""

