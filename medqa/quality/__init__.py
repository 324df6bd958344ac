"""Pure-text scoring of answers (no torch): metrics, lexicon, probe specs."""
