"""Continuing an interrupted run in its own folder: finding its latest complete checkpoint, setting aside
what was recorded after it, and continuing the same W&B run.

`train.resume` is null (a fresh run), `auto` (the latest unfinished run under runs/ with the same config,
else a fresh run) or a run folder (`runs/<date>/<time>`). The resumed run writes into that folder; its
command's config is kept beside the first one in `.hydra/resume-<time>/`.

What happened after the checkpoint is redone, so what was recorded after it is set aside, never deleted:
probes.jsonl rows of later steps move to `probes.superseded-<time>.jsonl`; W&B offline cannot rewind a run
(wandb 0.31 `resume_from` needs the server), so the resumed run starts a new offline segment with the same
run id (`wandb/offline-run-<time>-<id>`, marked resumed) and first replays the history up to the checkpoint
step from the checkpoint's trainer_state.json and probes.jsonl (a killed segment may lack its last rows).
The newest segment alone is then the whole run without gaps or duplicate steps: `wandb sync` that one.
Earlier segments stay on disk untouched.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from omegaconf import OmegaConf

from medqa.checks import ConfigError, RunWriteError, check_adapter_dir
from medqa.run_folder import check_not_live, live_holder

# What HF Trainer writes into checkpoint-N and resume reads; trainer_state.json comes last, so a checkpoint cut
# short by a kill lacks it (or holds it empty) and is skipped (checkpoint_problem).
CHECKPOINT_FILES = (
    "adapter_model.safetensors",
    "adapter_config.json",
    "optimizer.pt",
    "scheduler.pt",
    "rng_state.pth",
    "trainer_state.json",
)
RUNS_ROOT = Path("runs")  # where hydra.run.dir puts runs by default (conf/config.yaml)
RESUME_KEYS = ("resume", "resume_accept_data_change")  # how to continue, not what the run is: not compared


def checkpoints(run_dir: Path) -> list[Path]:
    """The run's complete checkpoints (checkpoint_problem is None), oldest first."""
    return [p for p in _saved(run_dir) if checkpoint_problem(p) is None]


def _saved(run_dir: Path) -> list[Path]:
    root = Path(run_dir) / "checkpoints"
    found = [p for p in root.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()] if root.is_dir() else []
    return sorted(found, key=checkpoint_step)


def checkpoint_problem(checkpoint: Path) -> str | None:
    """Why resume could not continue from `checkpoint`, or None when it is complete: every file resume reads
    is there and not empty, trainer_state.json parses with its step and log, the adapter's safetensors header
    covers the file. Read before anything opens (no W&B segment, no probe rows moved)."""
    p = Path(checkpoint)
    for name in CHECKPOINT_FILES:
        f = p / name
        if not f.is_file():
            return f"{p.name}: no {name}"
        if f.stat().st_size == 0:
            return f"{p.name}: {name} is empty (0 bytes)"
    try:
        state = json.loads((p / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        return f"{p.name}: trainer_state.json unreadable ({err})"
    if not isinstance(state, dict) or not isinstance(state.get("log_history"), list):
        return f"{p.name}: trainer_state.json has no log_history"
    try:
        check_adapter_dir(p, key="train.resume checkpoint")
    except ConfigError as err:
        return str(err)
    return None


def checkpoint_step(checkpoint: Path) -> int:
    return int(Path(checkpoint).name.split("-")[-1])


def run_finished(run_dir: Path) -> bool:
    """Whether the run in `run_dir` finished: its run.json is a finished run's (an interrupted run's run.json
    says `"state": "interrupted"` and the run can be continued)."""
    path = Path(run_dir) / "run.json"
    if not path.exists():
        return False
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("state") != "interrupted"
    except (OSError, ValueError, AttributeError):
        return True  # unreadable: never resumed over


def check_resumable(run_dir: Path, key: str = "train.resume") -> Path:
    """The checkpoint to continue `run_dir` from; ConfigError when it is not an unfinished run with one."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{key}={run_dir}: no such run folder")
    if run_finished(run_dir):
        raise ConfigError(f"{key}={run_dir}: that run finished (run.json exists); start a new run instead")
    found = checkpoints(run_dir)
    if not found:
        saved = _saved(run_dir)
        why = f" ({checkpoint_problem(saved[-1])})" if saved else ""
        raise ConfigError(f"{key}={run_dir}: no complete checkpoint in {run_dir / 'checkpoints'}{why}")
    return found[-1]


def config_differences(run_dir: Path, cfg) -> list[str]:
    """Keys whose value differs from the run's saved config (train.resume aside): resuming with another
    config would not continue the same run."""
    saved_file = Path(run_dir) / ".hydra" / "config.yaml"
    if not saved_file.exists():
        return []
    saved = OmegaConf.to_container(OmegaConf.load(saved_file), resolve=False)
    now = OmegaConf.to_container(cfg, resolve=False)
    now.pop("hydra", None)
    for c in (saved, now):
        for k in RESUME_KEYS:
            c.get("train", {}).pop(k, None)
    return _diff(saved, now)


def _diff(a, b, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str) for d in _diff(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [prefix.rstrip(".")] if a != b else []


def find_resumable(cfg, root: Path = RUNS_ROOT) -> Path | None:
    """The latest unfinished run under `root` (runs/<date>/<time>) with a checkpoint and the same config."""
    candidates = sorted((p for p in Path(root).glob("*/*") if p.is_dir()), reverse=True)
    for run_dir in candidates:
        if run_finished(run_dir) or not (run_dir / ".hydra" / "config.yaml").exists() or live_holder(run_dir):
            continue  # finished, not a run, or being trained by a live process
        if checkpoints(run_dir) and not config_differences(run_dir, cfg):
            return run_dir
    return None


def resolve_resume(argv: list[str], cfg, resume: str | None) -> list[str]:
    """Command-line overrides for Hydra: a resumed run reuses its run folder (hydra.run.dir) and keeps this
    command's config in .hydra/resume-<time>/. `auto` becomes the run it found, or null."""
    if not resume:
        return argv
    explicit = next((a.split("=", 1)[1] for a in argv if a.lstrip("+").startswith("hydra.run.dir=")), None)
    if resume == "auto":
        if explicit and checkpoints(Path(explicit)):
            run_dir = Path(explicit)
        else:
            run_dir = None if explicit else find_resumable(cfg)
        if run_dir is None:
            print("train.resume=auto: no unfinished run of this config with a checkpoint; starting a fresh run")
            return [a for a in argv if not a.startswith("train.resume=")] + ["train.resume=null"]
    else:
        run_dir = Path(resume)
    check_not_live(run_dir, "train.resume")  # never join a run another process is training
    check = check_resumable(run_dir)
    if resume != "auto" and explicit and Path(explicit).resolve() != run_dir.resolve():
        raise ConfigError(
            f"train.resume={resume} and hydra.run.dir={explicit}: a resumed run writes into its own folder"
        )
    differ = config_differences(run_dir, cfg)
    if differ:
        raise ConfigError(
            f"train.resume={run_dir}: the config differs from that run's .hydra/config.yaml in {', '.join(differ)}; "
            "resume with the same overrides"
        )
    print(f"resuming {run_dir} from {check.name}")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    kept = [a for a in argv if not a.startswith("train.resume=") and not a.lstrip("+").startswith("hydra.run.dir=")]
    return [
        *kept,
        f"train.resume={run_dir.absolute()}",
        f"hydra.run.dir={run_dir.absolute()}",
        f"hydra.output_subdir=.hydra/resume-{stamp}",
    ]


def check_same_data(run_dir: Path, provenance: dict, accept_change: bool = False) -> None:
    """A resumed run trains on the rows it started with: the drawn mix's fingerprint must equal the one in the
    run's data_provenance.json (a source file edited in place changes it). ConfigError naming both, unless
    `accept_change` (train.resume_accept_data_change=true), which keeps the new provenance beside the first."""
    path = Path(run_dir) / "data_provenance.json"
    try:
        before = json.loads(path.read_text(encoding="utf-8"))["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        before = None
    now = provenance["fingerprint"]
    if before == now:
        return
    shown = "none readable" if before is None else f"train {before.get('train')}, eval {before.get('eval')}"
    if not accept_change:
        raise ConfigError(
            f"train.resume={run_dir}: the data drawn now (fingerprint train {now['train']}, eval {now['eval']}) is not "
            f"the run's ({shown}, in {path}): a source file or the data settings changed. Restore them, or set "
            "train.resume_accept_data_change=true to continue on the new data"
        )
    aside = path.with_name(f"data_provenance.resume-{time.strftime('%Y%m%d-%H%M%S')}.json")
    aside.write_text(json.dumps(provenance, indent=2), encoding="utf-8")
    print(f"train.resume_accept_data_change=true: continuing on changed data ({shown} -> {now}); see {aside.name}")


def set_aside_probe_rows(probes_file: Path, step: int) -> list[dict]:
    """Keep probes.jsonl rows up to `step`; later rows (redone after resuming) move to a new
    probes.superseded-<time>.jsonl beside it. Returns the kept rows."""
    if not probes_file.exists():
        return []
    rows = [json.loads(line) for line in probes_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    kept = [r for r in rows if r["step"] <= step]
    later = [r for r in rows if r["step"] > step]
    if later:
        aside = probes_file.with_name(f"probes.superseded-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.jsonl")
        with aside.open("x", encoding="utf-8") as f:  # "x": never overwrite
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in later)
        tmp = probes_file.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept), encoding="utf-8")
        os.replace(tmp, probes_file)
    return kept


def wandb_segments(run_dir: Path) -> list[Path]:
    """The run's W&B run folders (offline-run-<time>-<id> / run-<time>-<id>), oldest first."""
    root = Path(run_dir) / "wandb"
    return sorted((p for p in root.glob("*run-*-*") if p.is_dir()), key=lambda p: p.name.split("run-", 1)[1])


def previous_wandb_id(run_dir: Path) -> str | None:
    segments = wandb_segments(run_dir)
    return segments[-1].name.rsplit("-", 1)[1] if segments else None


# HF's WandbCallback puts these in the run summary, not the history (transformers.integrations.WandbCallback)
SUMMARY_ONLY = {"train_runtime", "train_samples_per_second", "train_steps_per_second", "train_loss", "total_flos"}


def replay_history(run, recorder, checkpoint: Path, probe_rows: list[dict]) -> int:
    """Log the run's history up to `checkpoint` into `run` (the new W&B segment), rebuilt from what is on
    disk for sure: the checkpoint's trainer_state.json log (as HF's WandbCallback logs it) and probes.jsonl
    (as the recorder logs it). The killed segment is not read: a SIGKILL loses whatever W&B had not yet
    written, so it may lack the last rows before the checkpoint. Returns the rows logged."""
    from transformers.integrations.integration_utils import rewrite_logs

    up_to = checkpoint_step(checkpoint)
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
    n = 0
    for entry in state["log_history"]:
        step = entry["step"]
        if step > up_to:
            continue
        logs = {k: v for k, v in entry.items() if k != "step"}
        run.summary.update({k: v for k, v in logs.items() if k in SUMMARY_ONLY})
        run.log({**rewrite_logs({k: v for k, v in logs.items() if k not in SUMMARY_ONLY}), "train/global_step": step})
        n += 1
        if "eval_loss" in entry and any(r["step"] == step for r in probe_rows):
            recorder.rows = [r for r in probe_rows if r["step"] <= step]
            recorder.log(step)  # the probe tables follow each eval, as during training
            n += 1
    recorder.rows = list(probe_rows)
    return n


def begin_resume(run_dir: Path, checkpoint: Path, run, recorder) -> None:
    """Set aside what was recorded after `checkpoint`, give the recorder the rows kept, and replay the W&B
    history up to the checkpoint into `run` (the new segment)."""
    kept = set_aside_probe_rows(Path(run_dir) / "probes.jsonl", checkpoint_step(checkpoint))
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
    eval_losses = {e["step"]: e["eval_loss"] for e in state["log_history"] if "eval_loss" in e}
    recorder.restore(kept, eval_losses)  # aggregates and alarms of the kept evals: selection goes on from them
    if run is not None and not run.disabled:
        replay_history(run, recorder, checkpoint, kept)


def write_error(err: OSError, run_dir: Path) -> RunWriteError:
    """A failed write during training (disk full, unwritable folder) as one clear error naming what is kept."""
    kept = ", ".join(p.name for p in checkpoints(run_dir)) or "none"
    where = err.filename or run_dir
    return RunWriteError(
        f"could not write {where}: {err.strerror or err}. Earlier checkpoints are intact ({kept}); "
        f"free space or fix the folder, then continue with train.resume={run_dir}"
    )
