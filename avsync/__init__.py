"""The audio-visual sync model (PyTorch), its checkpoints, synthetic talking heads and the decision rule.

Importing the package does not import torch: the serving image needs only the numpy parts.
"""
