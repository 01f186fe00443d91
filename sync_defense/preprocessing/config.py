"""Every preprocessing constant, one small config per concern.

Training, the export parity checks and the Triton ``preprocess`` step all read ``DEFAULT_CONFIG``,
so the tensors the model was trained on are the tensors it is served (train/serve skew is the
classic bug of lip-sync detection: a one-frame shift between audio and video *is* the signal).

``timeline``, ``faces``, ``mouth`` and ``audio`` shape what the model sees: a checkpoint records
them (``model_input``) and refuses to load under others. ``texture``, ``speech``, ``limits`` and ``decode``
may change without retraining the sync model (``texture`` shapes the artefact detector's input).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

from sync_defense.contract import MAX_UPLOAD_BYTES


@dataclass(frozen=True)
class TimelineConfig:
    """Every video is mapped onto ``fps`` by timestamps and cut into windows of ``clip_frames``."""

    fps: int = 25
    clip_frames: int = 25  # T: video frames per model window (1 s)
    window_stride_frames: int = 25  # windows start every this many frames

    def __post_init__(self) -> None:
        if not 0 < self.window_stride_frames <= self.clip_frames:
            raise ValueError("window_stride_frames must be in 1..clip_frames")


@dataclass(frozen=True)
class FaceConfig:
    """Face detection on a few small frames, and the tracks joined from the detections."""

    detect_every: int = 5  # run the detector and the face mesh on every n-th timeline frame
    detect_width: int = 640  # ... on the frame downscaled to at most this width (BlazeFace sees 192 px anyway)
    detector: str = "full"  # BlazeFace full range: faces down to ~60 px in a 640-px frame ("short": close-ups only)
    tiles: int = 1  # > 1: also detect on n x n overlapping tiles (smaller faces, n * n + 1 times the cost)
    min_score: float = 0.5  # BlazeFace detection score
    max_faces: int = 4  # tracks kept (those on screen longest); each is scored on its own
    track_min_iou: float = 0.3  # a detection continues a track when it overlaps its last box this much
    track_max_gap_frames: int = 50  # a face missed for longer ends its track (a new one starts if it returns)
    track_min_detections: int = 3  # tracks seen on fewer detector runs are detector noise
    track_min_seconds: float = 2.0  # shorter tracks are dropped: false positives that repeat a few times, faces passing by
    box_median_keyframes: int = 3  # running median over consecutive detections: one bad detection is dropped
    box_smooth_frames: int = 9  # centred moving average of the box centre over interpolated boxes
    box_size_smooth_frames: int = 25  # the box size changes slowly; detector size noise is smoothed longer


@dataclass(frozen=True)
class MouthConfig:
    """The lip-aligned mouth crop (centred on the lips, scaled by the mouth width, corners level) and its pixels."""

    size: float = 2.0  # crop side in mouth widths (corner to corner): lips, nostrils' edge and chin top on real speakers
    crop_size: int = 64  # H = W of the mouth crop fed to the visual encoder
    pixel_mean: float = 0.5  # after scaling to 0..1
    pixel_std: float = 0.25


@dataclass(frozen=True)
class TextureConfig:
    """The crops that judge the mouth's picture, not its movement (``texture``, the artefact detector): not a
    model input of the sync model, so changing them needs no retraining of it."""

    # The mouth's square (``mouth.size`` mouth widths) is read at this many pixels, the upper face at the same
    # scale. A 96-px generator face puts about 70 of its pixels across the square, so at the model's 64-px crop
    # its blur is lost (measured: a 3x upscaled lower face moved the sharpness ratio from 0.9 to 0.56 there);
    # at 128 it shows.
    square_px: int = 128
    # The upper crop's side as a share of the mouth's square: one mouth width, about the eyes' spacing, so it
    # spans the bridge of the nose and the inner corners of the eyes and ends half a mouth width below the eye
    # line, far above the re-made lower face.
    upper_share: float = 0.5
    artefact_every: int = 5  # the artefact detector reads every n-th measured frame's crops (5 a second at 25 fps)

    @property
    def upper_px(self) -> int:
        return round(self.upper_share * self.square_px)


@dataclass(frozen=True)
class AudioConfig:
    """Resampling and the normalised log-mel the audio encoder reads."""

    sample_rate: int = 16_000
    n_fft: int = 512
    win_length: int = 400  # 25 ms
    hop_length: int = 160  # 10 ms -> 4 mel frames per video frame at 25 fps
    n_mels: int = 80  # F
    fmin: float = 55.0
    fmax: float = 7_600.0
    log_floor: float = 1e-6
    mel_mean: float = -7.0  # fixed affine normalisation of the log-mel (no per-clip statistics)
    mel_std: float = 3.5


@dataclass(frozen=True)
class SpeechConfig:
    """Speech per frame (``vad.py``): webrtcvad, silero-vad and an RMS floor must all agree."""

    rms_dbfs: float = -45.0  # frames quieter than this are silence
    webrtc_mode: int = 2  # webrtcvad aggressiveness 0..3; alone it still passes white noise and tones
    webrtc_frame_ms: int = 20  # webrtcvad takes 10, 20 or 30 ms frames; 20 ms = two per 40 ms frame
    silero_threshold: float = 0.5  # silero-vad speech probability; the guard against noise, tones and music
    max_pause_frames: int = 5  # pauses up to this many frames between speech stay speech (the mouth still moves)
    min_speech_frames: int = 3  # shorter isolated speech bursts are dropped (clicks, coughs, VAD flicker)
    min_window_fraction: float = 0.3  # windows with less speech than this are not judged (nor searched for an offset)


@dataclass(frozen=True)
class LimitsConfig:
    """What one upload may cost, all in one place: longer videos are sampled, much longer ones refused.

    Cost follows timestamps and headers, not bytes, so each limit is checked before the memory or
    CPU it guards is spent (``decode.py``): from the container's header when it is opened, then on
    every decoded frame. docs/reliability.md lists them.
    """

    max_windows_per_face: int = 60  # past this many windows per face the windows are sampled (cost stops growing)
    skim_stretch_windows: int = 5  # a longer video is decoded only in max_windows_per_face / this stretches of this many windows
    max_duration_s: float = 3600.0  # declared by the header, then spanned by the frames; audio is held whole (64 kB/s)
    min_duration_s: float = 2.0  # at least one window and faces.track_min_seconds: a shorter clip could never hold a face track
    max_upload_bytes: int = MAX_UPLOAD_BYTES  # the client checks the same number before sending (contract)
    max_frame_gap_s: float = 5.0  # longer without a frame is a timestamp trick (2 frames 300 s apart), not a video
    max_frame_pixels: int = 3840 * 2160  # 4K UHD; checked in the header before a frame is decoded (16000x16000 PNG)
    max_video_frames: int = 216_000  # an hour at 60 fps: decoding cost is per stored frame, not per timeline frame
    max_audio_offset_s: float = 30.0  # audio starting later (or earlier) than this from the first frame is refused
    max_wall_s: float = 240.0  # decoding budget per upload, under the client's default 300-s deadline


HWACCELS = ("", "cuda")  # "": FFmpeg's CPU decoders; "cuda": the GPU's video decoder (NVDEC)
HWACCEL_ENV = "SYNC_DEFENSE_DECODE_HWACCEL"  # read once, into DEFAULT_CONFIG: the serving steps use that config


@dataclass(frozen=True)
class DecodeConfig:
    """Where the video is decoded: on the CPU (the default), or opt-in on a GPU node's NVDEC, which takes the
    decoding itself off ``preprocess``'s cores. The frames come back to memory (NV12) and everything downstream
    (``to_rgb``, ``to_small``, timestamps, rotation) is unchanged; a stream NVDEC cannot decode (a codec or
    profile it lacks) is decoded on the CPU, and a node without a usable GPU refuses every upload (``decode.py``).
    """

    hwaccel: str = field(default_factory=lambda: os.environ.get(HWACCEL_ENV, ""))

    def __post_init__(self) -> None:
        if self.hwaccel not in HWACCELS:
            raise ValueError(f"decode.hwaccel ({HWACCEL_ENV}) must be one of {HWACCELS}, not {self.hwaccel!r}")


@dataclass(frozen=True)
class PreprocessConfig:
    """The whole preprocessing: one config per concern, plus the sizes derived from several of them."""

    timeline: TimelineConfig = field(default_factory=TimelineConfig)
    faces: FaceConfig = field(default_factory=FaceConfig)
    mouth: MouthConfig = field(default_factory=MouthConfig)
    texture: TextureConfig = field(default_factory=TextureConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    speech: SpeechConfig = field(default_factory=SpeechConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)

    def __post_init__(self) -> None:
        if self.audio.sample_rate % (self.audio.hop_length * self.timeline.fps):
            raise ValueError("hop_length * fps must divide sample_rate: mel frames must align with video frames")
        if self.limits.min_duration_s < self.faces.track_min_seconds:
            raise ValueError("limits.min_duration_s must be at least faces.track_min_seconds: shorter videos would answer no_face")

    @property
    def mels_per_frame(self) -> int:
        """Log-mel frames per video frame (4 at 25 fps and a 10 ms hop)."""
        return self.audio.sample_rate // (self.audio.hop_length * self.timeline.fps)

    @property
    def mel_frames(self) -> int:
        """Audio length of one window in log-mel frames (the audio encoder's T)."""
        return self.timeline.clip_frames * self.mels_per_frame

    @property
    def samples_per_frame(self) -> int:
        return self.audio.sample_rate // self.timeline.fps

    def model_input(self) -> dict:
        """The constants that shape the model's inputs: a checkpoint is only valid under the same ones."""
        timeline = {"fps": self.timeline.fps, "clip_frames": self.timeline.clip_frames}  # the stride is not seen
        return {"timeline": timeline, "faces": asdict(self.faces), "mouth": asdict(self.mouth),
                "audio": asdict(self.audio)}


DEFAULT_CONFIG = PreprocessConfig()
