"""A synthetic audio-visual deepfake corpus from real ingredients: espeak-ng speech, real face photos.

No deepfake data set can be downloaded on the project's machines, so this package renders one:
real speech drives a mouth and jaw on real (augmented) face photos, written as real mp4 files and
read back through the serving preprocessing. Fakes break the audio-mouth link in the ways real
lip-sync fakes do.
"""
