"""Where the checkout's artifacts are: the committed checkpoint and its calibration, the sample video and
the committed model repository.

They are files of the checkout, not package data (training rewrites the checkpoint; the repository is
a folder the user edits), so they are found through one explicit setting: ``SYNC_DEFENSE_HOME``, the
checkout's root. It defaults to the working directory, where ``make``, ``pytest`` and the image's
commands run; the serving image sets it to its copy of the checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

HOME = Path(os.environ.get("SYNC_DEFENSE_HOME", ".")).resolve()
CHECKPOINT = HOME / "checkpoints" / "tiny.pt"
CALIBRATION = HOME / "checkpoints" / "calibration.json"
SAMPLE_VIDEO = HOME / "samples" / "talking_head.mp4"
MODEL_REPOSITORY = HOME / "model_repository"
