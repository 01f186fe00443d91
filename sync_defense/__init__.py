"""Sync-Defense: lip-sync deepfake detection served on NVIDIA Triton Inference Server.

Layers, each importing only those before it:

- ``sync_defense.contract``      the ensemble's models, tensors and JSON answer (no dependencies)
- ``sync_defense.preprocessing`` upload bytes -> mouth windows, log-mel, speech (numpy, PyAV, OpenCV)
- ``sync_defense.model``         the PyTorch network and its checkpoints (torch)
- ``sync_defense.inference``     the offset search, the decision rule (numpy) and the PyTorch reference
- ``sync_defense.serving``       the Triton steps as plain functions (what the server imports)
- ``sync_defense.client``        gRPC / HTTP client and the ``syncdefense`` CLI

Beside them, never imported by the server: ``export`` (checkpoint -> ONNX -> repositories),
``training``, ``synthetic`` (the rendered corpus) and ``realdata`` (real recordings).
"""
