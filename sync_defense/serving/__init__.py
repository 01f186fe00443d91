"""The Triton steps as importable functions; the ``model.py`` files of the repository are thin adapters."""
