"""Shared preprocessing: the one path from an uploaded file to model windows (training and serving)."""

from .config import DEFAULT_CONFIG, PreprocessConfig
from .decode import MediaError
from .pipeline import PreparedVideo, preprocess_video, warm_up

__all__ = ["DEFAULT_CONFIG", "MediaError", "PreparedVideo", "PreprocessConfig", "preprocess_video", "warm_up"]
