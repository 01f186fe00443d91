"""Real face photos that ship inside installed wheels, and their per-clip augmentation.

matplotlib's ``grace_hopper.jpg`` and scikit-image's ``astronaut.png`` are colour portraits;
scikit-image's ``lfw_subset.npy`` holds 100 grey 25x25 LFW faces, upscaled here and tinted with
skin tones. Face diversity is what limits a model trained on this corpus, so every clip gets its
own colour, lighting, geometry and texture.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from sync_defense.preprocessing import DEFAULT_CONFIG
from sync_defense.preprocessing.faces import detect_faces

LFW_FACES = 100  # the first 100 images of lfw_subset are faces, the rest are not
# Skin tones (RGB, 0..1) from light to dark, used to tint the grey LFW faces.
SKIN_TONES = np.array([
    [1.00, 0.87, 0.77], [0.96, 0.80, 0.69], [0.92, 0.74, 0.60], [0.85, 0.65, 0.50],
    [0.76, 0.57, 0.42], [0.64, 0.46, 0.33], [0.52, 0.36, 0.25], [0.40, 0.27, 0.19],
])


@dataclass(frozen=True)
class FacePhoto:
    name: str
    image: np.ndarray  # RGB uint8
    box: np.ndarray  # (x, y, w, h) of the face
    mouth: np.ndarray  # (x, y) centre of the photo's own lips: the drawn mouth covers them


def _with_box(name: str, image: np.ndarray) -> FacePhoto:
    faces = detect_faces(image, 1.0, DEFAULT_CONFIG)
    if not faces:
        raise ValueError(f"no face found in {name}")
    return FacePhoto(name, image, faces[0].box, faces[0].lips[:2])


def grace_hopper_photo() -> np.ndarray:
    """The portrait matplotlib ships in its wheel (RGB uint8): a real face, no download."""
    from pathlib import Path

    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@lru_cache(maxsize=1)
def face_bank() -> dict[str, FacePhoto]:
    """Every usable face photo, by name (``grace_hopper``, ``astronaut``, ``lfw_000`` ...)."""
    import skimage.data

    bank = {"grace_hopper": _with_box("grace_hopper", grace_hopper_photo())}
    bank["astronaut"] = _with_box("astronaut", skimage.data.astronaut())
    for i, grey in enumerate(skimage.data.lfw_subset()[:LFW_FACES]):
        big = cv2.resize((grey * 255).astype(np.uint8), (200, 200), interpolation=cv2.INTER_CUBIC)
        big = cv2.copyMakeBorder(big, 60, 60, 60, 60, cv2.BORDER_REPLICATE)
        try:
            bank[f"lfw_{i:03d}"] = _with_box(f"lfw_{i:03d}", np.repeat(big[:, :, None], 3, axis=2))
        except ValueError:
            continue  # the detector misses a few of them; they are simply not used
    return bank


def augment(photo: FacePhoto, rng: np.random.Generator) -> FacePhoto:
    """Colour (skin tone, white balance, brightness, contrast, gamma), mirror, blur and grain."""
    image = photo.image.astype(np.float32) / 255.0
    if photo.name.startswith("lfw_"):
        image = image * SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.9, 1.1, 3)
    else:
        image = image * rng.uniform(0.8, 1.15, 3)  # white balance / skin-tone shift
    image = (image - 0.5) * rng.uniform(0.7, 1.3) + 0.5 + rng.uniform(-0.15, 0.15)
    image = np.clip(image, 0, 1) ** rng.uniform(0.7, 1.4)
    # A lighting gradient across the face (a lamp on one side).
    h, w = image.shape[:2]
    ramp = np.linspace(-1, 1, w)[None, :, None] * rng.uniform(-0.25, 0.25)
    image = np.clip(image * (1 + ramp), 0, 1)
    box, mouth = photo.box.copy(), photo.mouth.copy()
    if rng.random() < 0.5:
        image = image[:, ::-1]
        box[0] = w - box[0] - box[2]
        mouth[0] = w - 1 - mouth[0]
    if rng.random() < 0.4:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 2.0))
    image = image + rng.normal(0, rng.uniform(0, 0.03), image.shape)
    return FacePhoto(photo.name, (np.clip(image, 0, 1) * 255).astype(np.uint8), box, mouth)
