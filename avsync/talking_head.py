"""Synthetic talking heads: real speech (espeak-ng) driving a mouth drawn on a real face photo.

The videos exercise the real decode -> face -> mouth -> log-mel path end to end. Shifting the
audio against the mouth (``offset_frames``) makes the simplest lip-sync fake.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from preprocessing.config import DEFAULT_CONFIG, PreprocessConfig
from preprocessing.faces import detect_faces
from preprocessing.mouth import mouth_boxes

from .corpus.render import mouth_track
from .corpus.speech import Voice, synthesize

DEMO_VOICE = Voice(language="en", variant="", words_per_minute=150, pitch=50)


def grace_hopper_photo() -> np.ndarray:
    """The portrait matplotlib ships in its wheel (RGB uint8): a real face, no download."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@dataclass(frozen=True)
class TalkingHead:
    """A photo with the mouth position our own preprocessing would crop."""

    photo: np.ndarray
    mouth: np.ndarray  # (cx, cy, side) in photo pixels

    @classmethod
    def from_photo(cls, photo: np.ndarray, cfg: PreprocessConfig = DEFAULT_CONFIG) -> TalkingHead:
        gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
        faces = detect_faces(gray, 1.0, cfg)
        if not faces:
            raise ValueError("no face found in the photo")
        return cls(photo=photo, mouth=mouth_boxes(faces[0][None, :], cfg)[0])

    def render(self, openness: np.ndarray, sway_px: float = 3.0) -> np.ndarray:
        """``(n, H, W, 3)`` frames: the mouth opens with ``openness``; the head sways slightly."""
        cx, cy, side = self.mouth
        frames = np.empty((len(openness),) + self.photo.shape, dtype=np.uint8)
        for k, level in enumerate(openness):
            img = self.photo.copy()
            half_w = int(side * 0.32)
            half_h = int(2 + side * 0.22 * level)
            cv2.ellipse(img, (int(cx), int(cy)), (half_w + 3, half_h + 3), 0, 0, 360, (150, 70, 70), -1)
            cv2.ellipse(img, (int(cx), int(cy)), (half_w, half_h), 0, 0, 360, (40, 10, 15), -1)
            shift = np.float32([[1, 0, sway_px * np.sin(k / 11.0)], [0, 1, sway_px * np.cos(k / 17.0)]])
            frames[k] = cv2.warpAffine(img, shift, img.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)
        return frames


def talking_head_video(
    text: str,
    offset_frames: int = 0,
    fps: int = 25,
    cfg: PreprocessConfig = DEFAULT_CONFIG,
    head: TalkingHead | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Frames and 16 kHz audio of ``head`` saying ``text``.

    With ``offset_frames`` > 0 the mouth moves that many frames *after* the sound (the audio is
    delayed against its own mouth track by shifting the track), a lip-sync error.
    """
    head = head or TalkingHead.from_photo(grace_hopper_photo(), cfg)
    speech = synthesize(text, DEMO_VOICE, cfg.sample_rate)
    lead = np.zeros(int(0.3 * cfg.sample_rate), np.float32)
    audio = np.concatenate([lead, speech, lead])
    n_frames = int(audio.size / cfg.sample_rate * fps)
    openness = mouth_track(audio, cfg.sample_rate, fps, n_frames).delayed(offset_frames).opening
    return head.render(openness), audio[: int(n_frames * cfg.sample_rate / fps)]


def main() -> None:
    parser = argparse.ArgumentParser(description="Write a synthetic talking-head mp4 (H.264 + AAC).")
    parser.add_argument("text")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--offset-frames", type=int, default=0, help="mouth lag behind the speech (a fake when not 0)")
    args = parser.parse_args()
    from .media import encode_mp4

    frames, audio = talking_head_video(args.text, args.offset_frames)
    args.out.write_bytes(encode_mp4(frames, 25, audio, DEFAULT_CONFIG.sample_rate))
    print(f"{args.out}: {len(frames) / 25:.2f} s")


if __name__ == "__main__":
    main()
