"""From scored pairs to an answer: the offset search, the decision rule (numpy) and the PyTorch reference."""
