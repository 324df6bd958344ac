"""Data sources, cleaning, mixing by ratio, provenance, and the embedded corpus generator."""
