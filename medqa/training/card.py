"""The adapter's model card (`adapter/README.md`), written by medqa in place of PEFT's blank template: what the
adapter was trained from and how, what the evals said (loss and answer quality side by side), which step was kept
and why, the probe answers of the kept step, and the decoding they were given with. Pure text: no torch, no wandb.
"""

from __future__ import annotations

import json

NOT_ADVICE = (
    "**Research artifact, not medical advice.** This adapter was trained to study how fine-tuning changes a small "
    "model's answers to medical questions. Its answers can be wrong, incomplete or harmful; do not use them to "
    "diagnose, treat or make any health decision."
)


def _num(x, digits: int = 4) -> str:
    return "—" if x is None else f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def _fence(text: str) -> str:
    """A model answer as a fenced text block: nothing in it is rendered as Markdown or HTML."""
    return "```text\n" + (text or "").replace("```", "'''") + "\n```"


def _front_matter(base_model: str, tags: list[str]) -> str:
    lines = ["---", "library_name: peft", "pipeline_tag: text-generation"]
    if "@" not in base_model and not base_model.startswith("/"):
        lines.append(f"base_model: {json.dumps(base_model)}")  # a hub id: the hub links the base model
    lines.append("tags:")
    lines += [f"  - {json.dumps(t)}" for t in ["medqa", "lora", "research-artifact", *tags]]
    return "\n".join([*lines, "---"])


def _data_section(provenance: dict) -> list[str]:
    mix = provenance["mix"]
    out = [
        "## Data",
        "",
        f"{mix['train']:,} train + {mix['eval']:,} eval rows of {mix['total']:,} asked; shares: "
        + ", ".join(f"{name} {share:.0%}" for name, share in mix["share"].items())
        + ".",
        "",
        "| source | where | loaded | after cleaning | sampled | train | eval |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, p in provenance["sources"].items():
        cells = [p.get(k) for k in ("loaded", "cleaned", "sampled", "train", "eval")]
        out.append(f"| {name} | `{p.get('where')}` | " + " | ".join(_num(c) for c in cells) + " |")
    fp = provenance["fingerprint"]
    share = mix.get("list_share") or {}
    out += [
        "",
        f"List-formatted answers: train {_num(share.get('train'), 3)}, eval {_num(share.get('eval'), 3)}. "
        f"Fingerprints: train `{fp['train']}`, eval `{fp['eval']}` (equal fingerprints: byte-identical rows).",
    ]
    return out


def _settings_section(lora: dict, train: dict, global_batch: int | None) -> list[str]:
    keys = ("epochs", "max_steps", "lr", "per_device_batch", "grad_accum", "warmup_steps", "lr_scheduler",
            "max_length", "eval_steps", "precision", "seed", "select_by")  # fmt: skip
    return [
        "## LoRA and training",
        "",
        f"LoRA r={lora['r']}, alpha={lora['alpha']}, dropout={lora['dropout']}, "
        f"targets: {', '.join(lora['target_modules'])}. Loss on the answer only (prompt/completion chats).",
        "",
        "| setting | value |",
        "|---|---|",
        *[f"| {k} | {train[k]} |" for k in keys if k in train],
        *([f"| global batch | {global_batch} |"] if global_batch else []),
    ]


def _eval_section(evals: list[dict], selected: dict) -> list[str]:
    heldout = any(e.get("heldout_quality") is not None for e in evals)  # the held-out generation eval was on
    out = [
        "## Evals",
        "",
        "Step 0 is the base model (adapter disabled). Quality is the mean answer quality in [0, 1] (medqa.quality), "
        "on the five probes"
        + (" and on the held-out questions (with its 95% bootstrap interval)" if heldout else "")
        + ": a lower loss can come with worse answers.",
        "",
        "| step | train loss | eval loss | token accuracy | probe quality | probe EOS |"
        + (" held-out quality [95% CI] |" if heldout else "")
        + " |",
        "|---:|---:|---:|---:|---:|---:|" + ("---:|" if heldout else "") + "---|",
    ]
    for e in evals:
        note = "kept" if e["step"] == selected.get("step") else ""
        if e.get("divergence"):
            note = (note + "; " if note else "") + "divergence alarm"
        ci = e.get("heldout_quality_ci") or [None, None]
        held = f" {_num(e.get('heldout_quality'), 3)} [{_num(ci[0], 3)}, {_num(ci[1], 3)}] |" if heldout else ""
        out.append(
            f"| {e['step']} | {_num(e.get('train_loss'))} | {_num(e.get('eval_loss'))} | "
            f"{_num(e.get('mean_token_accuracy'))} | {_num(e.get('probe_quality'), 3)} | "
            f"{_num(e.get('probe_eos_rate'), 2)} |{held} {note} |"
        )
    rule = selected.get("rule")
    why = {
        "quality": "the eval with the best mean probe quality",
        "loss": "the eval with the lowest eval loss",
        "loss_quality": "the best probe quality minus eval loss / first eval loss",
        "last": "the last weights",
    }.get(rule, str(rule))
    held = selected.get("heldout_quality")
    out += [
        "",
        f"**Kept: step {selected.get('step')}** (train.select_by={rule}: {why}; probe quality "
        f"{_num(selected.get('probe_quality'), 3)}, eval loss {_num(selected.get('eval_loss'))}"
        + (f", held-out quality {_num(held, 3)}" if held is not None else "")
        + ").",
    ]
    return out


def _answers_section(answers: list[dict], step) -> list[str]:
    out = [f"## Probe answers at the kept step ({step})", ""]
    for r in answers:
        flags = ", ".join(r.get("flags") or []) or "none"
        out += [
            f"**{r['probe_id']}**: {r['question']}",
            "",
            _fence(r["answer"]),
            "",
            f"quality {_num(r.get('quality'), 3)}; ended at end of turn: {'yes' if r.get('stopped_eos') else 'no'}; "
            f"flags: {flags}",
            "",
        ]
    return out


def render_card(
    *,
    base_model: str,
    provenance: dict,
    lora: dict,
    train: dict,
    evals: list[dict],
    selected: dict,
    answers: list[dict],
    decoding: dict,
    tags: list[str] = (),
    global_batch: int | None = None,
    wandb_run: str | None = None,
) -> str:
    """The card's Markdown. `answers`: the probes.jsonl rows of the kept step; `decoding`: the effective
    generation config (also adapter/generation_config.json); `tags`: the run's science labels (`lora=...`)."""
    out = [
        _front_matter(base_model, list(tags)),
        "",
        "# medqa LoRA adapter",
        "",
        NOT_ADVICE,
        "",
        "## Base model",
        "",
        f"`{base_model}`"
        + (
            " — medqa's embedded model, rebuilt from the recipe in `base_model.json` (its hash names it); "
            "`medqa.model.portable.resolve_base` finds or builds it."
            if base_model.startswith("medqa-tiny@")
            else ""
        ),
        "",
        *_data_section(provenance),
        "",
        *_settings_section(lora, train, global_batch),
        "",
        *_eval_section(evals, selected),
        "",
        *_answers_section(answers, selected.get("step")),
        "## Decoding",
        "",
        "The answers above were generated with this configuration (saved as `generation_config.json`, so "
        "`model.generate` uses it by default):",
        "",
        "```json",
        json.dumps(decoding, indent=2, sort_keys=True, default=str),
        "```",
        "",
        "## Loading",
        "",
        "```python",
        "from peft import PeftModel",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "from medqa.model.portable import adapter_base_name, resolve_base",
        "",
        'base_dir = resolve_base(adapter_base_name("adapter"), "adapter")  # a hub id resolves to itself',
        "base = AutoModelForCausalLM.from_pretrained(base_dir, use_safetensors=True)",
        'model = PeftModel.from_pretrained(base, "adapter", use_safetensors=True)',
        "tokenizer = AutoTokenizer.from_pretrained(base_dir)",
        "```",
    ]
    if wandb_run:
        out += ["", f"W&B run: `{wandb_run}` (artifact lineage: data mix -> this run -> this adapter)."]
    return "\n".join(out) + "\n"
