"""Every preprocessing constant in one place.

Training, the export parity checks and the Triton ``preprocess`` model all read this object, so the
tensors the model was trained on are the tensors it is served (train/serve skew is the classic bug
of lip-sync detection: a one-frame shift between audio and video *is* the signal).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PreprocessConfig:
    """Timeline, crops, audio features and window layout shared by every stage."""

    # Timeline: every video is mapped onto this frame rate by timestamps.
    fps: int = 25
    clip_frames: int = 25  # T: video frames per model window (1 s)
    window_stride_frames: int = 25  # windows start every this many frames
    max_batch: int = 32  # the encoders' max_batch_size: the scoring step sends chunks of at most this many
    max_windows_per_face: int = 60  # cost cap: longer videos get this many windows per face, sampled
    max_duration_s: float = 3600.0  # audio is held whole (64 kB/s): longer uploads are refused
    min_duration_s: float = 1.0  # one full window

    # Faces and mouths.
    face_detect_every: int = 5  # run the Haar cascade on every n-th timeline frame
    face_detect_width: int = 320  # detection runs on a frame downscaled to this width
    face_min_size_frac: float = 0.12  # smallest face, as a fraction of the downscaled width
    max_faces: int = 4  # tracks kept (those on screen longest); each is scored on its own
    track_min_iou: float = 0.3  # a detection continues a track when it overlaps its last box this much
    track_max_gap_frames: int = 50  # a face missed for longer ends its track (a new one starts if it returns)
    track_min_detections: int = 3  # tracks seen on fewer detector runs are detector noise
    track_min_seconds: float = 2.0  # shorter tracks are dropped: false positives that repeat a few times, faces passing by
    box_median_keyframes: int = 3  # running median over consecutive detections: one bad detection is dropped
    box_smooth_frames: int = 9  # centred moving average of the box centre over interpolated boxes
    box_size_smooth_frames: int = 25  # the box size changes slowly; detector size noise is smoothed longer
    mouth_center_y: float = 0.78  # mouth centre, fraction of the face box height from its top
    mouth_size: float = 0.55  # square mouth crop side, fraction of the face box width
    crop_size: int = 64  # H = W of the mouth crop fed to the visual encoder
    pixel_mean: float = 0.5  # after scaling to 0..1
    pixel_std: float = 0.25

    # Audio-video offset search (SyncNet-style): the audio is slid over the mouth by up to this many
    # frames either way on a face's most voiced windows, and the best-matching shift is the offset.
    offset_max_frames: int = 15
    offset_windows: int = 4  # per face; each costs 2 * offset_max_frames extra audio windows

    # Audio.
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
    speech_rms_dbfs: float = -45.0  # a window with RMS below this is silence (no speech)
    # Speech (preprocessing/vad.py): a frame is speech when webrtcvad, silero-vad and the RMS gate all agree.
    vad_webrtc_mode: int = 2  # webrtcvad aggressiveness 0..3; alone it still passes white noise and tones
    vad_webrtc_frame_ms: int = 20  # webrtcvad takes 10, 20 or 30 ms frames; 20 ms = two per 40 ms frame
    vad_silero_threshold: float = 0.5  # silero-vad speech probability; the guard against noise, tones and music
    vad_max_pause_frames: int = 5  # pauses up to this many frames between speech stay speech (the mouth still moves)
    vad_min_speech_frames: int = 3  # shorter isolated speech bursts are dropped (clicks, coughs, VAD flicker)
    min_speech_fraction: float = 0.3  # windows below this speech fraction leave the decision

    def __post_init__(self) -> None:
        if self.sample_rate % (self.hop_length * self.fps):
            raise ValueError("hop_length * fps must divide sample_rate: mel frames must align with video frames")
        if not 0 < self.window_stride_frames <= self.clip_frames:
            raise ValueError("window_stride_frames must be in 1..clip_frames")

    @property
    def mels_per_frame(self) -> int:
        """Log-mel frames per video frame (4 at 25 fps and a 10 ms hop)."""
        return self.sample_rate // (self.hop_length * self.fps)

    @property
    def mel_frames(self) -> int:
        """Audio length of one window in log-mel frames (the audio encoder's T)."""
        return self.clip_frames * self.mels_per_frame

    @property
    def samples_per_frame(self) -> int:
        return self.sample_rate // self.fps

    @property
    def clip_seconds(self) -> float:
        return self.clip_frames / self.fps


# The fields that shape the tensors the model sees (a checkpoint is only valid with the same values);
# the others (windowing, speech gating, tracking limits, offset search) may change without retraining.
MODEL_INPUT_FIELDS = (
    "fps", "clip_frames", "face_detect_every", "face_detect_width", "face_min_size_frac", "box_median_keyframes",
    "box_smooth_frames", "box_size_smooth_frames",
    "mouth_center_y", "mouth_size", "crop_size", "pixel_mean", "pixel_std", "sample_rate", "n_fft", "win_length",
    "hop_length", "n_mels", "fmin", "fmax", "log_floor", "mel_mean", "mel_std",
)

DEFAULT_CONFIG = PreprocessConfig()
