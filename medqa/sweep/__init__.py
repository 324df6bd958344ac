"""W&B sweep files read and checked offline, and the offline sweep runner."""
