"""Thin `python -m medqa.X` entrypoints: parse, compose with Hydra, validate once, call one stage."""
