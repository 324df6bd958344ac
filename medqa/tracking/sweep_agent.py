"""The command line `wandb agent` runs for one proposal, built with the agent's own macro code."""

from __future__ import annotations

import sys
from typing import Any


def agent_command(command: list[str], params: dict[str, Any], program: str) -> list[str]:
    """`command` (a sweep file's, with ${...} macros) expanded as `wandb agent` would for `params`;
    ${interpreter} is this Python (the agent takes `python` from PATH)."""
    from wandb.sdk.launch.sweeps import utils as agent_utils

    expanded = agent_utils.create_sweep_command(command)  # ${envvar:NAME}
    macros = agent_utils.create_sweep_command_args({"args": {k: {"value": v} for k, v in params.items()}})
    macros |= {"env": ["/usr/bin/env"], "interpreter": [sys.executable], "program": [program]}
    out: list[str] = []
    for chunk in expanded:
        out += macros[chunk[2:-1]] if chunk.startswith("${") and chunk.endswith("}") else [chunk]
    return out
