"""A W&B sweep file (sweeps/*.yaml) read, checked and turned into command lines, with no server.

The file is what `wandb sweep` uploads: `method`, `metric`, `parameters` (Hydra override keys such as
`data.mix.wikidoc`, `lora`, `train.epochs`, `decoding`) and a `command` that runs the Hydra app with
`${args_no_hyphens}`. It is checked against W&B's own open-source engine (the `sweeps` package: its JSON
schema, and one proposal) and against conf/: every value a parameter can take must compose and validate
(medqa.checks), so `lora=foo` or `data.mix.wikidoc=1.5` is reported before anything trains. Command lines
are built with the agent's own macro code (wandb.sdk.launch.sweeps.utils), so a run gets the same
arguments offline as under `wandb agent`.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from medqa.config.validate import checked_settings
from medqa.core.errors import ConfigError, one_line, read_utf8
from medqa.tracking.sweep_agent import agent_command

TRAIN_MODULE = "medqa.train"
TRAIN_SCRIPT = "medqa/train.py"
METHODS = ("grid", "random", "bayes")  # what sweeps.next_run proposes ("custom" needs a server)
# Macros that hand the parameters to Hydra as overrides: key=value, ++key=value, +key=value.
HYDRA_ARG_MACROS = ("args_no_hyphens", "args_override_hydra", "args_append_hydra")
# --key=value, JSON and files are not Hydra's syntax: a run would fail, online as offline.
NON_HYDRA_ARG_MACROS = ("args", "args_no_equals", "args_no_boolean_flags", "args_json", "args_json_file")
OTHER_MACROS = ("env", "interpreter", "program")
ENV_TOKENS = ("${env}", "/usr/bin/env", "env")  # may start the command (no assignments after it)
INTERPRETER_TOKENS = ("${interpreter}", "python", "python3")  # offline, always this Python (sys.executable)
RUNNER_KEYS = ("hydra.run.dir", "tracking.mode")  # the offline runner sets these for every run
MAX_COMBINATIONS = 16  # up to this many, every combination of parameter values is also composed and checked


@dataclass(frozen=True)
class SweepSpec:
    path: Path
    config: dict  # the file as written: what `wandb sweep` uploads
    filled: dict  # the same with the engine's defaults filled in (sweeps.SweepConfig)
    name: str  # the sweep's `name`, else the file's stem: the W&B group of its runs

    @property
    def method(self) -> str:
        return self.filled["method"]

    @property
    def metric(self) -> str | None:
        return (self.filled.get("metric") or {}).get("name")

    @property
    def goal(self) -> str:
        return (self.filled.get("metric") or {}).get("goal", "minimize")

    @property
    def parameters(self) -> list[str]:
        return list(self.filled["parameters"])


def _engine():
    """The `sweeps` package, imported without the pydantic-v1 deprecation noise it prints."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import sweeps  # its __init__ imports sweeps.config.schema (the JSON-schema validator) too

    return sweeps


def _plain(value: Any) -> Any:
    """A proposed value as a plain Python value: the engine hands back numpy scalars."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (list, dict, str)) else value


def propose(spec: SweepSpec, runs: list) -> tuple[dict[str, Any], dict] | None:
    """The engine's next proposal for `spec` given the finished `runs` (sweeps.SweepRun): ({key: value}, the
    engine's search info, e.g. bayes' predicted value), or None when a grid is exhausted."""
    engine = _engine()
    with warnings.catch_warnings():  # the GP's convergence warnings land in search_info instead
        warnings.simplefilter("ignore")
        run = engine.next_run(spec.filled, runs, validate=True)
    if run is None:
        return None
    info = {k: _plain(v) for k, v in (run.search_info or {}).items()}
    return {k: _plain(v["value"]) for k, v in run.config.items()}, info


def sweep_run(params: dict[str, Any], state: str, summary: dict | None = None, name: str | None = None):
    """A finished (or failed) run as the engine reads it, the way the W&B server hands it over."""
    engine = _engine()
    config = {k: {"value": v} for k, v in params.items()}
    # By alias: under pydantic 2 the field name `summary_metrics` is silently ignored.
    return engine.SweepRun(name=name, state=state, config=config, summaryMetrics=dict(summary or {}))


def grid_size(spec: SweepSpec) -> int | None:
    """How many runs a grid proposes, counted the way the engine expands it (None for random/bayes)."""
    if spec.method != "grid":
        return None
    size = 1
    for conf in spec.filled["parameters"].values():
        if "values" in conf:
            size *= len(conf["values"])
        elif conf.get("distribution") == "int_uniform":
            size *= conf["max"] - conf["min"] + 1
        elif conf.get("distribution") == "q_uniform":
            size *= len(np.arange(conf["min"], conf["max"], conf["q"]))
    return size


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and check a sweep file: YAML, the engine's schema, the command, a first proposal. Raises
    ConfigError naming the file and the key. `check_composes` checks the values against conf/."""
    p = Path(path)
    try:
        raw = yaml.safe_load(read_utf8(p))
    except OSError as err:
        raise ConfigError(f"{p}: cannot read the sweep file ({err.strerror})") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{p}: not valid YAML ({one_line(str(err))})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: a sweep file is a mapping with method, metric, parameters and command")
    problems = _schema_problems(raw)
    if problems:
        raise ConfigError(f"{p}: " + "; ".join(problems))
    if raw["method"] not in METHODS:
        raise ConfigError(f"{p}: method={raw['method']!r}: offline runs need one of {list(METHODS)}")
    for key, param in raw["parameters"].items():
        if "parameters" in param:
            raise ConfigError(f"{p}: parameters.{key}: nested parameters; name each as a dotted Hydra key")
        if key.split(".")[0] == "hydra" or key in RUNNER_KEYS:
            raise ConfigError(f"{p}: parameters.{key}: not sweepable (the runner sets hydra.* and tracking.mode)")
    engine = _engine()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        filled = dict(engine.SweepConfig(raw))
    name = str(raw.get("name") or p.stem)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ConfigError(f"{p}: name={name!r}: letters, digits, '_', '.', '-' only (it names a folder)")
    spec = SweepSpec(path=p, config=raw, filled=filled, name=name)
    _check_command(spec)
    try:
        propose(spec, [])  # the engine's own checks that the schema leaves out (a grid over a range)
    except ValueError as err:
        raise ConfigError(f"{p}: {one_line(str(err))}") from None
    return spec


def _schema_problems(raw: dict) -> list[str]:
    """The engine's JSON-schema violations, each with the key it is about, then its range checks."""
    engine = _engine()
    problems = []
    for err in sorted(engine.config.schema.validator.iter_errors(raw), key=lambda e: list(map(str, e.path))):
        where = ".".join(map(str, err.absolute_path)) or "top level"
        problems.append(f"{where}: {one_line(err.message)[:300]}")
    if problems or not isinstance(raw.get("parameters"), dict):
        return problems or ["parameters: missing"]
    try:
        return [one_line(m) for m in engine.schema_violations_from_proposed_config(raw)]
    except ValueError as err:
        return [one_line(str(err))]


def _check_command(spec: SweepSpec) -> None:
    """The command is exactly `[${env}] ${interpreter}|python -m medqa.train|${program}` (program: this
    installation's medqa/train.py), then the parameters as Hydra overrides (one ${args_no_hyphens}) and fixed
    `key=value` overrides. Anything else (another program, code before the app, environment assignments,
    flags) is refused: sweep files are shared, and the runner executes this installation's medqa.train only."""
    p, command = spec.path, spec.config.get("command")
    if not command:
        example = f"[${{env}}, ${{interpreter}}, -m, {TRAIN_MODULE}, ${{args_no_hyphens}}]"
        raise ConfigError(f"{p}: command: missing; e.g. {example}")
    tokens = [str(c) for c in command]
    macros = [t[2:-1] for t in tokens if t.startswith("${") and t.endswith("}")]
    for m in macros:
        if m in NON_HYDRA_ARG_MACROS:
            raise ConfigError(f"{p}: command: ${{{m}}} is not Hydra's key=value syntax; use ${{args_no_hyphens}}")
        if m not in HYDRA_ARG_MACROS + OTHER_MACROS and not m.startswith("envvar:"):
            raise ConfigError(f"{p}: command: unknown macro ${{{m}}}")
    if sum(m in HYDRA_ARG_MACROS for m in macros) != 1:
        raise ConfigError(f"{p}: command: needs ${{args_no_hyphens}} once, so the parameters reach Hydra")
    i = 1 if tokens[0] in ENV_TOKENS else 0
    if i >= len(tokens) or tokens[i] not in INTERPRETER_TOKENS:
        shown = tokens[i] if i < len(tokens) else "(nothing)"
        raise ConfigError(
            f"{p}: command[{i}]={shown}: must run the training app with this Python (${{interpreter}}); "
            f"e.g. [${{env}}, ${{interpreter}}, -m, {TRAIN_MODULE}, ${{args_no_hyphens}}]"
        )
    i += 1
    if tokens[i : i + 2] == ["-m", TRAIN_MODULE]:
        i += 2
    elif i < len(tokens) and tokens[i] == "${program}":
        _check_program(spec)
        i += 1
    else:
        shown = tokens[i] if i < len(tokens) else "(nothing)"
        raise ConfigError(f"{p}: command[{i}]={shown}: must run the training app (-m {TRAIN_MODULE} or ${{program}})")
    for j, t in enumerate(tokens[i:], i):
        if t.startswith("-"):
            raise ConfigError(f"{p}: command: {t}: Hydra flags are not allowed; each run is one job")
        if t[2:-1] in HYDRA_ARG_MACROS:
            continue
        if not re.fullmatch(r"[+~]{0,2}[A-Za-z_][\w.]*=.*", t, flags=re.S):
            raise ConfigError(f"{p}: command[{j}]={t}: after the app only ${{args_no_hyphens}} and key=value overrides")
        if override_key(t).split(".")[0] == "hydra":
            raise ConfigError(f"{p}: command[{j}]={t}: not allowed (the runner sets hydra.*)")


def _check_program(spec: SweepSpec) -> None:
    """`program` is this installation's medqa/train.py (relative as in the shipped files, or its full path)."""
    program = str(spec.config.get("program", ""))
    if program == TRAIN_SCRIPT:
        return
    if program and Path(program).is_absolute() and Path(program).resolve() == train_script():
        return
    raise ConfigError(
        f"{spec.path}: program={program!r}: ${{program}} must be this installation's {TRAIN_SCRIPT} "
        f"({train_script()}); the runner never executes another script"
    )


def train_script() -> Path:
    """This installation's medqa/train.py, found without importing it."""
    return Path(importlib.util.find_spec(TRAIN_MODULE).origin).resolve()


def installation_env(env: dict[str, str]) -> dict[str, str]:
    """`env` for a run's subprocess, whose `python -P -m medqa.train` (no current folder on sys.path) imports
    this installation's package first, wherever the sweep is started from."""
    root = str(train_script().parent.parent)
    rest = [x for x in env.get("PYTHONPATH", "").split(os.pathsep) if x and x != root]
    return {**env, "PYTHONPATH": os.pathsep.join([root, *rest])}


def _app_index(command: list[str]) -> int | None:
    """Where the training app sits in a command line; its Hydra overrides follow."""
    for i, c in enumerate(command):
        if (c == TRAIN_MODULE and i > 0 and command[i - 1] == "-m") or c.endswith(TRAIN_SCRIPT):
            return i
    return None


def build_command(spec: SweepSpec, params: dict[str, Any]) -> list[str]:
    """The command line `wandb agent` would run for `params`, from the file's `command`, with the agent's own
    macro code; ${interpreter} is this Python (the agent takes `python` from PATH)."""
    return agent_command([str(c) for c in spec.config["command"]], params, str(spec.config.get("program")))


def override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def offline_command(spec: SweepSpec, params: dict, run_dir: Path, extra: list[str], group: bool) -> list[str]:
    """What the offline runner executes for `params`: this Python, `-P -m medqa.train` (the current folder is
    not searched for a `medqa` package) and the agent's overrides from the file's command, with
    tracking.mode=offline (in place of the file's), hydra.run.dir, tracking.group=<sweep name> when `group`,
    then `extra`. Nothing else of the file's command runs (_check_command refused anything else)."""
    command = build_command(spec, params)
    start = _app_index(command) + 1
    app_args = [a for a in command[start:] if override_key(a) != "tracking.mode"]
    tail = ["tracking.mode=offline", f"hydra.run.dir={run_dir}"]
    tail += [f"tracking.group={spec.name}"] if group else []
    return [sys.executable, "-P", "-m", TRAIN_MODULE, *app_args, *tail, *extra]


def run_overrides(command: list[str]) -> list[str]:
    """The Hydra overrides of a training command line."""
    return command[_app_index(command) + 1 :]


def sets_group(spec: SweepSpec, extra: list[str]) -> bool:
    """Whether the user chose the W&B group (in the file's command or parameters, or on the command line)."""
    keys = {override_key(a) for a in run_overrides(build_command(spec, {})) + list(extra)} | set(spec.parameters)
    return "tracking.group" in keys


def candidate_values(spec: SweepSpec) -> dict[str, list]:
    """Every value a grid can take per parameter; for a range, its two ends (quantiles 0.001 and 0.999 for
    an unbounded distribution)."""
    _engine()
    from sweeps.params import HyperParameter

    out = {}
    for key, conf in spec.filled["parameters"].items():
        if "values" in conf:
            out[key] = list(conf["values"])
        elif "value" in conf:
            out[key] = [conf["value"]]
        elif conf.get("distribution") == "int_uniform":
            out[key] = [conf["min"], conf["max"]]
        else:
            hp = HyperParameter(key, conf)
            unbounded = hp.type in {HyperParameter.NORMAL, HyperParameter.Q_NORMAL} or "log_normal" in hp.type
            out[key] = [_plain(hp.ppf(q)) for q in ((0.001, 0.999) if unbounded else (0.0, 1.0))]
    return out


def _parameter_named(message: str, params: dict) -> str | None:
    """`parameters.KEY=VALUE` for the parameter whose key a check's message starts with, else None."""
    for key in sorted(params, key=len, reverse=True):
        if message.startswith((f"{key}=", f"{key}:", f"+{key}=")):
            return f"parameters.{key}={params[key]}"
    return None


def check_composes(spec: SweepSpec, extra: list[str]) -> int:
    """Every parameter value composes with conf/ and validates (medqa.checks), with the file's fixed
    overrides and `extra`: each value beside the others' first (so an error names its parameter), then every
    combination when there are at most MAX_COMBINATIONS. Returns how many compositions were checked; raises
    ConfigError naming the file and the value."""
    p = spec.path
    for o in extra:
        if o.startswith("-"):
            raise ConfigError(f"{p}: extra override {o}: Hydra flags are not allowed; each run is one job")
        if "=" not in o:
            raise ConfigError(f"{p}: extra override {o!r}: expected key=value")
        if override_key(o) in spec.parameters:
            raise ConfigError(f"{p}: extra override {o}: {override_key(o)} is a parameter of this sweep")
        if override_key(o) in RUNNER_KEYS:
            raise ConfigError(f"{p}: extra override {o}: the runner sets {override_key(o)} for every run")
    values = candidate_values(spec)
    keys, group = list(values), not sets_group(spec, extra)

    def check(params: dict, where: str) -> None:
        command = offline_command(spec, params, Path("runs/sweep-check"), extra, group)
        overrides = [o for o in run_overrides(command) if not override_key(o).startswith("hydra.")]
        try:
            checked_settings(overrides)
        except ConfigError as err:  # named by the parameter the error is about, when it is one
            raise ConfigError(f"{p}: {_parameter_named(str(err), params) or where}: {err}") from None

    first = {k: v[0] for k, v in values.items()}
    checked = 0
    for key in keys:  # each value beside the others' first: an error names its parameter
        for value in values[key]:
            check(first | {key: value}, f"parameters.{key}={value}")
            checked += 1
    combos = list(itertools.islice(itertools.product(*values.values()), MAX_COMBINATIONS + 1))
    if len(combos) <= MAX_COMBINATIONS:  # and every combination, when there are few
        for combo in combos:
            params = dict(zip(keys, combo, strict=True))
            check(params, "parameters " + " ".join(f"{k}={v}" for k, v in params.items()))
            checked += 1
    return checked
