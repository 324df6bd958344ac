"""Plain dataclasses, one per config group, each checking its own fields; imports nothing above medqa.core."""
