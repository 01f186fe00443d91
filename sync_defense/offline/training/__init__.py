"""Training, held-out evaluation and calibration of the decision (torch; never imported by the server)."""
