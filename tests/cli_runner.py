"""Runs `python -m MODULE ARGS` requests quickly for the fault table (tests/test_faults.py).

Started once per test session as `python tests/cli_runner.py`; it imports the heavy third-party libraries once
(torch, transformers, hydra, datasets, wandb, ...) and then, per request read from stdin (one JSON line), forks
a child that runs the module exactly as `python -m` does (runpy, `__main__`, sys.argv), with its own working
folder, environment, stdout/stderr files and optional file-size limit, and answers {"rc": exit code} on stdout.
Nothing of medqa is imported before the fork: each case sees the package as a fresh command line would.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import resource
import runpy
import signal
import sys
import time
import traceback

PRELOAD = ("torch", "transformers", "omegaconf", "hydra", "datasets", "wandb", "peft", "trl", "yaml", "filelock")


def _exit_code(err: SystemExit) -> int:
    """What the interpreter makes of an uncaught SystemExit (a non-int code is printed and means 1)."""
    if err.code is None:
        return 0
    if isinstance(err.code, int):
        return err.code
    print(err.code, file=sys.stderr)
    return 1


def _child(req: dict) -> None:
    # The exit functions registered before the fork belong to the runner (e.g. W&B's media temp folder, made at
    # import): a child running them would delete what the next child needs.
    atexit._clear()
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update(req["env"])
    if req.get("fsize") is not None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (req["fsize"], resource.RLIM_INFINITY))
    for fd, path in ((1, req["stdout"]), (2, req["stderr"])):
        out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, fd)
        os.close(out)
    sys.stdin = open(os.devnull)  # noqa: SIM115
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.argv = [req["module"], *req["args"]]
    try:
        runpy.run_module(req["module"], run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as err:
        code = _exit_code(err)
    except BaseException:  # as the interpreter: the traceback on stderr, exit code 1
        traceback.print_exc()
        code = 1
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    with contextlib.suppress(BaseException):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def _wait(pid: int, timeout: float) -> int:
    deadline = time.time() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.time() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return -999  # timed out
        time.sleep(0.02)


def main() -> None:
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(req)
        print(json.dumps({"rc": _wait(pid, req.get("timeout", 300))}), flush=True)


if __name__ == "__main__":
    main()
