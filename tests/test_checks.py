"""Bad input is rejected before anything loads, with a message naming the key, the value and what is
allowed, and leaves no run folder and no W&B run behind. Most cases run the pre-Hydra check in-process
(fast); two run the real command line to see the one-line message and the exit code."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from medqa.cli.train import discard_hydra_only_dir, preflight
from medqa.config.validate import checked_settings, validate_settings
from medqa.core.errors import ConfigError
from medqa.core.run_folder import CHECKPOINT_FILES, check_adapter_dir
from medqa.model.tokenizer import prompt_token_floor

ROOT = Path(__file__).resolve().parent.parent

# (id, overrides, words the message must contain). Each is one bad input a user could type.
BAD_INPUTS = [
    ("unknown_group_option", ["lora=mlp_only"], ["lora=mlp_only", "no such option", "attn, attn_mlp"]),
    ("misspelled_key", ["train.epoch=2"], ["train.epoch=2", "no such key", "epochs"]),
    ("added_unknown_key", ["+train.epoch=2"], ["train: unknown key(s) ['epoch']", "epochs"]),
    (
        "mix_not_summing_to_1",
        ["data.mix.chatdoctor=0.85", "data.mix.wikidoc=0.5"],
        ["data.mix shares sum to 1.35", "not 1"],
    ),
    ("mix_share_over_1", ["data.mix.wikidoc=1.5"], ["data.mix.chatdoctor=-0.5", ">= 0"]),
    ("mix_negative", ["data.mix.chatdoctor=1.15", "data.mix.wikidoc=-0.15"], ["data.mix.wikidoc=-0.15", ">= 0"]),
    ("mix_unknown_source", ["data.mix.wikidoc=0", "+data.mix.pubmed=0.15"], ["data.mix.pubmed", "no such source"]),
    ("mix_unknown_key", ["data.mix={chatdoctor: 0.85, pubmed: 0.15}"], ["data.mix.pubmed", "no such key", "wikidoc"]),
    ("epochs_zero", ["train.epochs=0"], ["train.epochs=0", "must be > 0"]),
    ("lr_negative", ["train.lr=-1e-4"], ["train.lr=-0.0001", "must be > 0"]),
    ("lr_not_a_number", ["train.lr=abc"], ["train.lr='abc'", "expected float or int"]),
    ("lora_r_zero", ["lora.r=0"], ["lora.r=0", "must be > 0"]),
    ("lora_alpha_zero", ["lora.alpha=0"], ["lora.alpha=0", "must be > 0"]),
    ("dropout_one", ["lora.dropout=1.0"], ["lora.dropout=1.0", "[0, 1)"]),
    ("dropout_negative", ["lora.dropout=-0.1"], ["lora.dropout=-0.1", "[0, 1)"]),
    ("max_length_below_prompt", ["train.max_length=8"], ["train.max_length=8", "larger than the prompt"]),
    ("max_new_tokens_zero", ["decoding.max_new_tokens=0"], ["decoding.max_new_tokens=0", "must be > 0"]),
    (
        "eos_without_eot",
        ['decoding.eos_tokens=["<|end_of_text|>"]'],
        ["decoding.eos_tokens", "must include <|eot_id|>"],
    ),
    ("empty_probe_question", ["probes.questions.1.question=''"], ["probes.questions[1]", "empty question"]),
    ("tracking_mode", ["tracking.mode=upload"], ["tracking.mode='upload'", "offline"]),
    ("precision", ["train.precision=fp8"], ["train.precision='fp8'", "bf16"]),
    ("model_source", ["model.source=web"], ["model.source='web'", "embedded"]),
    ("trust_remote_code_not_bool", ["model.trust_remote_code=1"], ["model.trust_remote_code=1", "expected bool"]),
    ("missing_data_file", ["data.sources.wikidoc.path=/nonexistent/wikidoc.jsonl"], ["wikidoc.path", "no such file"]),
    ("recipe_heads", ["model.recipe.num_heads=3"], ["model.recipe.num_heads=3", "must divide hidden_size=256"]),
    ("select_by_unknown", ["train.select_by=accuracy"], ["train.select_by='accuracy'", "quality"]),
    (
        "save_steps_not_multiple_of_eval_steps",
        ["train.eval_steps=20", "train.save_steps=30"],
        ["train.save_steps=30", "multiple of train.eval_steps=20"],
    ),
    ("cache_implementation", ["decoding.cache_implementation=paged"], ["decoding.cache_implementation='paged'"]),
    ("resume_missing_run", ["train.resume=/nonexistent/runs/x"], ["train.resume=/nonexistent/runs/x", "no such run"]),
]
if not torch.cuda.is_available():
    BAD_INPUTS.append(("nf4_without_gpu", ["quant=nf4"], ["quant.load_in_4bit=True", "needs a CUDA GPU", "quant=none"]))


def _assert_nothing_created(tmp_path: Path, before_runs: set) -> None:
    assert not (tmp_path / "run").exists(), "a run folder was created for a rejected input"
    assert not list(tmp_path.rglob("wandb")), "a W&B run was created for a rejected input"
    assert _runs() == before_runs, "runs/ changed"


def _runs() -> set:
    return {str(p) for p in (ROOT / "runs").glob("*/*")} if (ROOT / "runs").exists() else set()


@pytest.mark.parametrize(("case", "overrides", "words"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_rejected_before_anything_exists(case, overrides, words, tmp_path):
    before = _runs()
    with pytest.raises(ConfigError) as err:
        preflight([*overrides, f"hydra.run.dir={tmp_path / 'run'}"])
    message = str(err.value)
    assert "\n" not in message
    for w in words:
        assert w in message, f"{case}: {w!r} not in {message!r}"
    _assert_nothing_created(tmp_path, before)


def test_all_problems_are_listed_at_once(tmp_path):
    with pytest.raises(ConfigError) as err:
        preflight(["train.lr=0", "lora.r=0", "decoding.max_new_tokens=-1", f"hydra.run.dir={tmp_path / 'run'}"])
    assert all(k in str(err.value) for k in ("train.lr=0", "lora.r=0", "decoding.max_new_tokens=-1"))


def test_secret_in_config_is_rejected_without_echoing_it(tmp_path):
    secret = "hf_PLANTEDconfigSECRET123"
    for override in (f"+model.hf_token={secret}", f"+tracking.api_key={secret}", f"model.hf_token={secret}"):
        with pytest.raises(ConfigError) as err:
            preflight([override, f"hydra.run.dir={tmp_path / 'run'}"])
        assert "token" in str(err.value) or "key" in str(err.value)
        assert secret not in str(err.value)
    _assert_nothing_created(tmp_path, _runs())


def _fake_checkpoint(run_dir: Path, adapter_bytes: bytes) -> Path:
    ckpt = run_dir / "checkpoints" / "checkpoint-3"
    ckpt.mkdir(parents=True)
    for name in CHECKPOINT_FILES:
        (ckpt / name).write_bytes(b"{}")
    (ckpt / "trainer_state.json").write_text('{"global_step": 3, "log_history": []}')
    (ckpt / "adapter_model.safetensors").write_bytes(adapter_bytes)
    return ckpt


def test_corrupt_adapter_in_checkpoint_is_rejected(tmp_path):
    from safetensors.torch import save_file

    run_dir = tmp_path / "old"
    ckpt = _fake_checkpoint(run_dir, b"\x08\x00\x00\x00\x00\x00\x00\x00not json")
    with pytest.raises(ConfigError, match="corrupt adapter file"):
        preflight([f"train.resume={run_dir}"])
    save_file({"w": torch.ones(64, 64)}, str(ckpt / "adapter_model.safetensors"))
    check_adapter_dir(ckpt)  # a whole file passes
    data = (ckpt / "adapter_model.safetensors").read_bytes()
    (ckpt / "adapter_model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigError, match="corrupt adapter file .*incomplete metadata, file not fully covered"):
        preflight([f"train.resume={run_dir}"])
    (ckpt / "adapter_model.safetensors").unlink()
    (ckpt / "adapter_model.bin").write_bytes(b"pickle")
    with pytest.raises(ConfigError, match="pickled adapter_model.bin, which is never loaded"):
        check_adapter_dir(ckpt)
    assert not (run_dir / "wandb").exists() and not (run_dir / ".hydra").exists()


def test_finished_run_is_not_resumed(tmp_path):
    run_dir = tmp_path / "done"
    _fake_checkpoint(run_dir, b"")
    (run_dir / "run.json").write_text("{}")
    with pytest.raises(ConfigError, match="that run finished"):
        preflight([f"train.resume={run_dir}"])


def test_unwritable_output_dir_is_rejected(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="not a writable folder"):
        preflight([f"hydra.run.dir={blocker / 'run'}"])


def test_run_path_check_for_commands_that_read_a_run(tmp_path):
    from medqa.probing.redecode import find_weights  # the one check of a run path (medqa.probe's preflight uses it)

    with pytest.raises(FileNotFoundError, match="no such file or directory"):
        find_weights(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="not a run dir"):
        find_weights(str(tmp_path))


def test_prompt_floor_is_a_lower_bound_of_the_real_count(compose, tokenizer):
    cfg, settings = checked_settings([])
    system = settings.data.system_prompt
    chat = [{"role": "system", "content": system}, {"role": "user", "content": ""}]
    real = len(
        tokenizer.apply_chat_template(chat, tokenize=True, add_generation_prompt=True, return_dict=True)["input_ids"]
    )
    floor = prompt_token_floor(system)
    assert 0.5 * real <= floor <= real, (floor, real)


def test_validate_settings_is_what_finetune_runs_first(compose):
    import dataclasses

    from medqa.config.build import settings_from_cfg
    from medqa.training.run import finetune

    settings = settings_from_cfg(compose())
    validate_settings(settings)  # the default config is valid
    bad = dataclasses.replace(settings, lora=dataclasses.replace(settings.lora, r=0))
    with pytest.raises(ConfigError, match="lora.r=0"):
        finetune(bad, Path("/nonexistent/never/created"), {})
    assert not Path("/nonexistent/never").exists()


def test_discard_removes_only_a_folder_holding_hydras_files(tmp_path):
    made = tmp_path / "hydra_only"
    (made / ".hydra").mkdir(parents=True)
    for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
        (made / ".hydra" / name).write_text("x")
    (made / "train.log").write_text("")
    discard_hydra_only_dir(made)
    assert not made.exists()
    kept = tmp_path / "user"
    (kept / ".hydra").mkdir(parents=True)
    (kept / ".hydra" / "config.yaml").write_text("x")
    (kept / "notes.txt").write_text("mine")
    discard_hydra_only_dir(kept)
    assert (kept / "notes.txt").read_text() == "mine" and (kept / ".hydra" / "config.yaml").exists()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["lora=mlp_only"], "medqa.train: error: lora=mlp_only: no such option; available: attn, attn_mlp"),
        (["train.lr=0", "+model.hf_token=hf_PLANTEDcliSECRET999"], "medqa.train: error: model.hf_token: credentials"),
    ],
    ids=["composition", "secret_in_config"],
)
def test_cli_prints_one_line_and_exits_nonzero(overrides, expected, tmp_path, run_module):
    run_dir = tmp_path / "run"
    out = run_module("medqa.train", *overrides, f"hydra.run.dir={run_dir}", timeout=300)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), out.stderr
    assert "Traceback" not in out.stderr + out.stdout and "hf_PLANTED" not in out.stderr + out.stdout
    assert not run_dir.exists() and not list(tmp_path.rglob("wandb"))


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["model.recipe.num_heads=3"], "model.recipe.num_heads=3: must divide hidden_size=256"),
        (["model.recipe.pretrain_steps=0"], "model.recipe.pretrain_steps=0: must be >= 1"),
        (["model.recipe.lr=fast"], "model.recipe.lr='fast': expected float or int"),
        (["model.recipe.vocab=10"], "model.recipe.vocab=10: no such key; model.recipe has: batch_size"),
    ],
)
def test_build_base_rejects_a_bad_recipe_before_building(overrides, expected, capsys, tmp_path, monkeypatch):
    from medqa import build_base

    monkeypatch.setenv("MEDQA_CACHE", str(tmp_path))
    with pytest.raises(SystemExit) as exit_:
        build_base.main(overrides)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"medqa.build_base: error: {expected}") and "\n" not in err, err
    assert not list(tmp_path.iterdir()), "nothing is built or cached for a rejected recipe"


def _corrupt_adapter_run(tmp_path: Path) -> Path:
    """A run folder whose adapter's safetensors file is cut short."""
    run = tmp_path / "corrupt_run"
    (run / "adapter").mkdir(parents=True)
    (run / "adapter" / "adapter_config.json").write_text("{}")
    (run / "adapter" / "adapter_model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    (run / "run.json").write_text("{}")
    return run


@pytest.mark.parametrize(
    ("command", "args", "expected"),
    [
        ("medqa.probe", ["run=/nonexistent/runs/x"], "medqa.probe: error: run=/nonexistent/runs/x: no such file"),
        ("medqa.probe", ["run={corrupt}"], "medqa.probe: error: {corrupt}/adapter/adapter_model.safetensors: corrupt"),
        ("medqa.probe", ["run=none", "decoding.max_new_tokens=0"], "medqa.probe: error: decoding.max_new_tokens=0"),
        ("medqa.score", ["--answers", "/nonexistent/answers.jsonl"], "medqa.score: error: --answers /nonexistent"),
        ("medqa.data", ["data.mix.wikidoc=1.5"], "medqa.data: error: data.mix.chatdoctor=-0.5: a share must be >= 0"),
        ("medqa.data", ["train.epoch=2"], "medqa.data: error: train.epoch=2: no such key"),
    ],
    ids=["probe_missing_run", "probe_corrupt_adapter", "probe_bad_decoding", "score_missing_file", "data_bad_mix",
         "data_misspelled_key"],
)  # fmt: skip
def test_every_entry_point_rejects_bad_input_in_one_line(command, args, expected, tmp_path, run_module):
    corrupt = _corrupt_adapter_run(tmp_path).resolve()
    args = [a.replace("{corrupt}", str(corrupt)) for a in args]
    before = _runs()
    out_dir = [f"hydra.run.dir={tmp_path / 'out'}"] if command == "medqa.probe" else []
    out = run_module(command, *args, *out_dir, timeout=300)
    assert out.returncode == 2, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected.replace("{corrupt}", str(corrupt))), out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert not (tmp_path / "out").exists() and _runs() == before and not list(tmp_path.rglob("wandb"))
