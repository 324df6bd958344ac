"""The embedded base model: its builder (a tiny Llama pretrained on the shipped text)."""
