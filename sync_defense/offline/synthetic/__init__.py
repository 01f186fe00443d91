"""The synthetic corpus: espeak-ng speech driving drawn mouths on face photos, rendered to real mp4 files."""
