"""Offline work, never imported by the server: the rendered corpus, real recordings, training and evaluation."""
