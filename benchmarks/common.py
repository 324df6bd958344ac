"""What the benchmarks share: named real model shapes with random weights (no download), chat examples of
realistic length built from the embedded data through medqa's own data path, and the GPU's peak rate."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

# Real shapes (the models' config.json); weights are random: throughput does not depend on their values.
SHAPES = {
    "llama32_3b": dict(
        hidden_size=3072, num_hidden_layers=28, num_attention_heads=24, num_key_value_heads=8,
        intermediate_size=8192, vocab_size=128256, head_dim=128, tie_word_embeddings=True,
    ),
    "llama32_1b": dict(
        hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
        intermediate_size=8192, vocab_size=128256, head_dim=64, tie_word_embeddings=True,
    ),
    # A CPU-sized stand-in so the scripts can be tried without a GPU.
    "toy": dict(
        hidden_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=256, vocab_size=4096, head_dim=32, tie_word_embeddings=True,
    ),
}  # fmt: skip
ALL_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# Dense bf16 tensor-core peak from the datasheets (the MFU denominator the issue uses).
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def peak_flops() -> float | None:
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def useful_mfu(n_params: int, tokens_per_s: float, peak: float | None, gpus: int = 1) -> float | None:
    """Useful model FLOP utilisation: 4·N FLOPs a token (forward 2N + input-gradient backward 2N; the frozen base
    needs no weight gradient) at `tokens_per_s` summed over `gpus` GPUs, over the peak of all of them."""
    if not peak:
        return None
    return round(4 * n_params * tokens_per_s / (peak * gpus), 4)


def random_checkpoint(shape: str, root: Path) -> Path:
    """Save (once) a Llama model of `shape` with random bf16 weights and a Llama-3-format tokenizer, so the
    harness loads it through its own path (`model.source=hub model.name_or_path=<folder>`)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from medqa.model.tiny.build import shipped_qa_texts
    from medqa.model.tokenizer import train_tokenizer

    target = root / shape
    if (target / "config.json").exists():
        return target
    started = time.time()
    tokenizer = train_tokenizer(shipped_qa_texts(), 4096)  # ids < 4096 are valid in any real vocab
    config = LlamaConfig(
        **SHAPES[shape], max_position_embeddings=8192, rope_theta=500000.0,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, dtype="bfloat16",
    )  # fmt: skip
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    tmp = target.with_name(target.name + ".tmp")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(target)
    del model
    print(f"random {shape} checkpoint saved to {target} in {time.time() - started:.0f} s", flush=True)
    return target


def chat_examples(tokenizer, n: int, lo: int = 120, hi: int = 512, seed: int = 0) -> list[dict]:
    """`n` prompt/completion chats from the embedded mix (medqa's data path), each answer extended with further
    answers to a token length drawn uniformly from [lo, hi] (the seed's ChatDoctor examples are ~120-512 tokens)."""
    from medqa.config.build import settings_from_cfg
    from medqa.config.compose import compose_config
    from medqa.data.mix import build_datasets

    data = settings_from_cfg(compose_config([])).data
    train, _, _ = build_datasets(data)
    rows = list(train)
    rng = random.Random(seed)
    answers = [r["completion"][0]["content"] for r in rows]
    examples = []
    for i in range(n):
        row = rows[i % len(rows)]
        target = rng.randint(lo, hi)
        prompt_len = len(tokenizer.apply_chat_template(row["prompt"], tokenize=True, add_generation_prompt=True)[
            "input_ids"
        ])  # fmt: skip
        budget = max(8, target - prompt_len - 1)  # the answer's share, end-of-turn token excluded
        text = row["completion"][0]["content"]
        while len(tokenizer(text, add_special_tokens=False)["input_ids"]) < budget:
            text += " " + rng.choice(answers)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][:budget]
        words = tokenizer.decode(ids).split()
        examples.append({"prompt": row["prompt"], "completion": [{"role": "assistant", "content": " ".join(words)}]})
    return examples


def write_json(path: Path | None, payload: dict) -> None:
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=2))


def error_tail(lines: int = 6) -> str:
    """The last lines of the traceback being handled, for a row's `trace`."""
    return " | ".join(traceback.format_exc().strip().splitlines()[-lines:])[-1200:]


def run_child(name: str, cmd: list[str], timeout: float, echo: bool = False) -> dict:
    """Run one row's child process: its `RESULT {json}` line, or the failure (a crash, or no result within `timeout`
    seconds) as the row's `error`; `wall_s` added. `echo`: the child's own output goes to stderr, for the log."""
    started = time.time()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        stdout, stderr, late = proc.stdout, proc.stderr, ""
    except subprocess.TimeoutExpired as err:  # a row that hangs or crawls is recorded, the table goes on
        stdout, stderr = _text(err.stdout), _text(err.stderr)
        late = f"did not finish in {timeout} s; last output: "
    if echo:
        sys.stderr.write(f"--- {name} stdout\n{stdout[-3000:]}\n--- {name} stderr\n{stderr[-3000:]}\n")
    line = next((x for x in stdout.splitlines() if x.startswith("RESULT ")), None)
    if line:
        result = json.loads(line[len("RESULT ") :])
    else:
        tail = (stderr or stdout).strip().splitlines()[-4:]
        result = {"row": name, "error": late + " | ".join(tail)[-600:]}
    result["wall_s"] = round(time.time() - started, 1)
    return result


def _text(output: bytes | str | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else (output or "")


def run_isolated(
    names: list[str], child_cmd: Callable[[str], list[str]], timeout: float, json_path: Path | None
) -> None:
    """Each variant of a peer row in its own process (a fresh CUDA context and peak memory): `child_cmd(name)` prints
    one `RESULT {json}` line; its result, or the failure as the row's `error`, is printed as a JSON line and appended
    to `json_path`. The child's own output (library messages, fallbacks) goes to stderr for the log."""
    for name in names:
        result = run_child(name, child_cmd(name), timeout, echo=True)
        print(json.dumps(result), flush=True)
        if json_path:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            with json_path.open("a") as f:
                f.write(json.dumps(result) + "\n")
