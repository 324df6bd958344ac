"""Re-decoding the tiny end-to-end run's saved weights: which folder means which weights, the same answers as
training gave under the same decoding, a W&B run per preset in the training run's group, and the serving
defaults that travel with the adapter (read back with plain transformers + PEFT)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from medqa.config.build import saved_run_settings, settings_from_cfg
from medqa.model.tokenizer import EOT
from medqa.probing.redecode import WeightsSource, find_weights, redecode, redecode_tracking
from medqa.settings.decoding import DecodingSettings
from medqa.settings.tracking import TrackingSettings
from medqa.tracking.runs import read_offline_run

ROOT = Path(__file__).resolve().parent.parent
SMOKE = [
    "train=smoke",
    "data.total=160",
    "decoding.max_new_tokens=48",
    "quality.heldout_questions=16",
]  # the smoke_run fixture's overrides


def _answers(run_dir: Path, step: int) -> dict[str, str]:
    rows = [json.loads(line) for line in (run_dir / "probes.jsonl").read_text().splitlines()]
    return {r["probe_id"]: r["answer"] for r in rows if r["step"] == step}


def _snapshot(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.lstat().st_mtime_ns for p in folder.rglob("*")}  # symlinks: W&B logs


def test_find_weights_from_run_adapter_and_checkpoint_dirs(smoke_run):
    summary, run_dir, _ = smoke_run
    run_dir = run_dir.resolve()
    kept = summary["selected"]["step"]  # the eval whose weights adapter/ holds (train.select_by)
    assert find_weights(str(run_dir)) == WeightsSource(run_dir, run_dir / "adapter", kept)
    assert find_weights(str(run_dir / "adapter")) == WeightsSource(run_dir, run_dir / "adapter", kept)
    checkpoint = run_dir / "checkpoints" / "checkpoint-3"
    assert find_weights(str(checkpoint)) == WeightsSource(run_dir, checkpoint, 3)
    assert find_weights("none") == WeightsSource() and find_weights(None).label == "base"


def test_bad_weights_paths_are_clear_errors(smoke_run, tmp_path):
    _, run_dir, _ = smoke_run
    with pytest.raises(FileNotFoundError, match="run=/no/such/run: no such file or directory"):
        find_weights("/no/such/run")
    with pytest.raises(ValueError, match="not a run dir"):
        find_weights(str(tmp_path))
    loose = shutil.copytree(run_dir / "adapter", tmp_path / "elsewhere" / "adapter")
    with pytest.raises(FileNotFoundError, match="base model and system prompt it was trained with are unknown"):
        find_weights(str(loose))
    pickled = tmp_path / "run" / "checkpoints" / "checkpoint-9"
    shutil.copytree(run_dir / "checkpoints" / "checkpoint-3", pickled)
    shutil.copy(run_dir / "run.json", tmp_path / "run" / "run.json")
    (pickled / "adapter_model.safetensors").rename(pickled / "adapter_model.bin")
    with pytest.raises(FileNotFoundError, match=r"missing \['adapter_model.safetensors'\]"):
        find_weights(str(pickled))


def test_saved_run_settings_from_run_json_and_from_hydra_config(smoke_run, compose_small, tmp_path):
    _, run_dir, _ = smoke_run
    cfg = compose_small(SMOKE)
    assert saved_run_settings(run_dir) == settings_from_cfg(cfg)  # a run started from Python: run.json
    (tmp_path / ".hydra").mkdir()
    OmegaConf.save(cfg, tmp_path / ".hydra" / "config.yaml")  # a Hydra run, crashed before run.json
    assert saved_run_settings(tmp_path) == settings_from_cfg(cfg)
    with pytest.raises(FileNotFoundError, match="neither .hydra/config.yaml nor run.json"):
        saved_run_settings(tmp_path / "nothing")


@pytest.mark.parametrize(("weights", "step"), [("adapter", None), ("checkpoints/checkpoint-3", 3), ("none", 0)])
def test_redecoding_with_the_training_decoding_gives_the_training_answers(smoke_run, tmp_path, weights, step):
    """The saved weights (the run's adapter, a checkpoint, the base alone) reload exactly: same answers as the
    probes gave during training at that step (the adapter holds the eval that train.select_by kept)."""
    summary_run, run_dir, _ = smoke_run
    step = summary_run["selected"]["step"] if step is None else step
    source = find_weights(weights if weights == "none" else str(run_dir / weights))
    trained = saved_run_settings(run_dir)
    summary = redecode(
        source,
        trained.model,
        trained.quant,
        trained.data.system_prompt,
        trained.probes,
        DecodingSettings(max_new_tokens=48),
        TrackingSettings(mode="disabled"),
        tmp_path / "out",
        {},
    )
    assert summary["step"] == step
    assert {r["probe_id"]: r["answer"] for r in summary["answers"]} == _answers(run_dir, step)
    saved = json.loads((tmp_path / "out" / "redecode.json").read_text())
    assert saved["generation_config"]["no_repeat_ngram_size"] == 0 and saved["generation_config"]["seed"] == 0
    sidecar = json.loads((tmp_path / "out" / "probes.generation_config.json").read_text())
    assert sidecar == saved["generation_config"]


def test_redecode_never_writes_into_a_run(smoke_run):
    _, run_dir, _ = smoke_run
    before = _snapshot(run_dir)
    source = find_weights(str(run_dir))
    trained = saved_run_settings(run_dir)
    for out_dir in (run_dir, run_dir / "redecode"):
        with pytest.raises(ValueError, match="inside the training run"):
            redecode(
                source,
                trained.model,
                trained.quant,
                "",
                trained.probes,
                DecodingSettings(),
                trained.tracking,
                out_dir,
                {},
            )
    assert _snapshot(run_dir) == before


def test_group_is_the_training_runs_group_or_its_wandb_id(smoke_run):
    summary, run_dir, _ = smoke_run
    source = find_weights(str(run_dir))
    wandb_id = Path(summary["wandb_dir"]).name.rsplit("-", 1)[-1]
    assert redecode_tracking(TrackingSettings(), source, None).group == wandb_id
    assert redecode_tracking(TrackingSettings(), source, "week4").group == "week4"
    assert redecode_tracking(TrackingSettings(group="mine"), source, "week4").group == "mine"
    assert redecode_tracking(TrackingSettings(), WeightsSource(), None).group == "base"


def test_cli_redecodes_a_run_under_two_presets(smoke_run, tmp_path, shrink_overrides, run_module):
    summary, run_dir, _ = smoke_run
    before = _snapshot(run_dir)
    out = run_module(
        "medqa.probe",
        "-m",
        f"run={run_dir}",
        "decoding=greedy_ngram3,greedy_rp13",
        "decoding.max_new_tokens=48",
        *shrink_overrides,
        f"hydra.sweep.dir={tmp_path}",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert _snapshot(run_dir) == before, "the training run's folder is never written to"
    group = Path(summary["wandb_dir"]).name.rsplit("-", 1)[-1]
    runs = {}
    for preset in ("greedy_ngram3", "greedy_rp13"):
        job = next(tmp_path.glob(f"*-{preset}"))
        (wandb_dir,) = (job / "wandb").glob("offline-run-*")
        runs[preset] = read_offline_run(wandb_dir)
        assert runs[preset]["group"] == group and runs[preset]["job_type"] == "redecode"
        config = runs[preset]["config"]
        assert config["redecode"]["decoding_preset"] == preset
        assert config["redecode"]["adapter_dir"] == str((run_dir / "adapter").resolve())
        (table,) = [h for h in runs[preset]["history"] if "probes/answers.path" in h]
        kept = summary["selected"]["step"]
        assert table["train/global_step"] == kept
        answers = json.loads((wandb_dir / "files" / table["probes/answers.path"]).read_text())
        assert len(answers["data"]) == 5 and {row[0] for row in answers["data"]} == {kept}
    ngram3 = runs["greedy_ngram3"]["config"]["decoding/generation_config"]
    rp13 = runs["greedy_rp13"]["config"]["decoding/generation_config"]
    assert (ngram3["no_repeat_ngram_size"], ngram3["repetition_penalty"]) == (3, 1.0)
    assert (rp13["no_repeat_ngram_size"], rp13["repetition_penalty"]) == (0, 1.3)
    assert "[diabetes_early]" in out.stdout


def test_adapter_carries_the_probe_decoding_for_plain_transformers_and_peft(smoke_run):
    """Loaded elsewhere with plain transformers + PEFT, the adapter decodes the way the experiment did."""
    import torch
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer, GenerationConfig

    summary, run_dir, _ = smoke_run
    adapter_dir = run_dir / "adapter"
    config = GenerationConfig.from_pretrained(adapter_dir)
    tokenizer = AutoTokenizer.from_pretrained(summary["base_model"])
    tokenizer.pad_token = "<|finetune_right_pad_id|>"
    assert config.eos_token_id == [tokenizer.convert_tokens_to_ids(EOT)]
    assert config.pad_token_id == tokenizer.pad_token_id not in config.eos_token_id
    assert (config.max_new_tokens, config.do_sample, config.repetition_penalty) == (48, False, 1.0)

    model = AutoPeftModelForCausalLM.from_pretrained(adapter_dir).eval()
    system = saved_run_settings(run_dir).data.system_prompt
    questions = {r["probe_id"]: r["question"] for r in map(json.loads, (run_dir / "probes.jsonl").open())}
    chats = [[{"role": "system", "content": system}, {"role": "user", "content": q}] for q in questions.values()]
    texts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in chats]
    batch = tokenizer(texts, add_special_tokens=False, padding=True, padding_side="left", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**batch, generation_config=config)
    answers = []
    for row in out[:, batch["input_ids"].shape[1] :].tolist():
        ends = [i for i, t in enumerate(row) if t in config.eos_token_id]
        answers.append(tokenizer.decode(row[: ends[0]] if ends else row))
    assert dict(zip(questions, answers, strict=True)) == _answers(run_dir, summary["selected"]["step"])


def test_training_run_logs_its_decoding(smoke_run):
    summary, run_dir, _ = smoke_run
    run = read_offline_run(Path(summary["wandb_dir"]))
    assert run["job_type"] == "train"
    logged = run["config"]["decoding/generation_config"]
    assert logged["max_new_tokens"] == 48 and logged["seed"] == 0 and logged["do_sample"] is False
    assert json.loads((run_dir / "probes.generation_config.json").read_text()) == logged
