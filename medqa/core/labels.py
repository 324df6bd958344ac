"""A run's scientific settings as short labels, shared by its W&B tags, its run.json and the compare report.
Plain dicts in, no heavy imports: the compare CLI reads saved runs with it."""

from __future__ import annotations

ATTN = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP = ("gate_proj", "up_proj", "down_proj")


def science_labels(settings: dict) -> dict[str, str]:
    """A run's scientific settings as short labels: base model, data mix and size, LoRA targets and rank,
    training length and lr, decoding. Never paths, times or speed levers, so runs that differ only in how
    they were computed share their tags. `settings` is a RunSettings as a dict (`dataclasses.asdict`, the
    form `run.json["settings"]` holds), so a saved run is labelled the same way as a live one. They become
    W&B tags (`key=value`), `run.json["labels"]` and the compare report's columns."""
    model, quant, lora = settings["model"], settings["quant"], settings["lora"]
    data, train, dec = settings["data"], settings["train"], settings["decoding"]
    targets = frozenset(lora["target_modules"])
    named = {frozenset(ATTN): "attn", frozenset(ATTN + MLP): "attn_mlp"}
    decoding = f"sample_t{dec['temperature']:g}_p{dec['top_p']:g}" if dec["do_sample"] else "greedy"
    decoding += f"_ngram{dec['no_repeat_ngram_size']}" if dec["no_repeat_ngram_size"] else ""
    decoding += f"_rp{dec['repetition_penalty']:g}" if dec["repetition_penalty"] != 1.0 else ""
    decoding += f"_max{dec['max_new_tokens']}" if dec["max_new_tokens"] != 256 else ""
    return {
        "model": model["name_or_path"].rstrip("/").rsplit("/", 1)[-1] + ("-nf4" if quant["load_in_4bit"] else ""),
        "mix": ",".join(f"{name}:{share:g}" for name, share in sorted(data["mix"].items()) if share),
        "n": str(data["total"]),
        "lora": f"{named.get(targets, '+'.join(sorted(targets)))}-r{lora['r']}",
        "length": f"{train['max_steps']}steps" if train["max_steps"] > 0 else f"{train['epochs']:g}ep",
        "lr": f"{train['lr']:g}",
        "decoding": decoding,
    }


def as_tags(labels: dict[str, str]) -> list[str]:
    """`key=value` W&B tags from science_labels (W&B caps a tag at 64 characters)."""
    return [f"{key}={value}"[:64] for key, value in labels.items()]
