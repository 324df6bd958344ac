"""Answering and scoring the probes during training (recorder, callbacks) and re-decoding saved weights."""
