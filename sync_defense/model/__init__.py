"""The PyTorch network (three exported graphs), its configs and checkpoints; imports torch."""
