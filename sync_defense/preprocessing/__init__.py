"""Shared preprocessing: the one path from an uploaded file to model windows (training and serving).

The constants (``config``) load with the package; the decoder and the pipeline, which pull in PyAV,
OpenCV, librosa and the face and phone models, load on first use. So the model layer and the graph
benchmarks read the constants on a machine that has none of those (the lent GPU machine).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .config import DEFAULT_CONFIG, PreprocessConfig

if TYPE_CHECKING:
    from .decode import MediaError
    from .pipeline import PreparedVideo, preprocess_video, warm_up

_ON_FIRST_USE = {"MediaError": ".decode", "PreparedVideo": ".pipeline", "preprocess_video": ".pipeline", "warm_up": ".pipeline"}

__all__ = ["DEFAULT_CONFIG", "MediaError", "PreparedVideo", "PreprocessConfig", "preprocess_video", "warm_up"]


def __getattr__(name: str) -> Any:
    if name not in _ON_FIRST_USE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_ON_FIRST_USE[name], __name__), name)
    globals()[name] = value
    return value
