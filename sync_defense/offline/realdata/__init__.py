"""Real recordings from pinned registry packages: a validation set never trained on, and real training material."""
