"""The fixed probe questions, answered at step 0 (base model) and at every eval, written to
`probes.jsonl` and logged to W&B as tables beside the loss."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from transformers import GenerationConfig, TrainerCallback

from medqa.generation import generate_answers
from medqa.tracking import probe_tables


@dataclass(frozen=True)
class Probe:
    id: str
    question: str


def load_probes(items: list[dict]) -> list[Probe]:
    """Probe list from config items ({id, question}); ids unique, questions non-empty."""
    probes = []
    for i, item in enumerate(items):
        question = str(item.get("question") or "").strip()
        if not question:
            raise ValueError(f"probes.questions[{i}] ({item.get('id', '?')}): empty question")
        probes.append(Probe(id=str(item.get("id") or f"probe_{i}"), question=question))
    ids = [p.id for p in probes]
    if not probes or len(set(ids)) != len(ids):
        raise ValueError(f"probes.questions: need at least one probe and unique ids, got {ids}")
    return probes


class ProbeRecorder:
    """Answers the probes with one decoding config and keeps every answer of the run."""

    def __init__(
        self,
        probes: list[Probe],
        system_prompt: str,
        config: GenerationConfig,
        out_file: Path,
        run,
        seed: int = 0,
    ):
        self.probes, self.config, self.out_file, self.run, self.seed = probes, config, out_file, run, seed
        system = [{"role": "system", "content": system_prompt}] if system_prompt else []
        self.chats = [[*system, {"role": "user", "content": p.question}] for p in probes]
        self.rows: list[dict] = []

    def record(self, model, tokenizer, step: int) -> list[dict]:
        """Answer every probe at `step`, append to probes.jsonl and log the tables."""
        answers = generate_answers(model, tokenizer, self.chats, self.config, seed=self.seed)
        rows = [
            {
                "step": step,
                "probe_id": p.id,
                "question": p.question,
                "answer": a.text,
                "stopped_eos": a.stopped_eos,
                "n_tokens": a.n_tokens,
            }
            for p, a in zip(self.probes, answers, strict=True)
        ]
        with self.out_file.open("a", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        self.rows += rows
        self.log(step)
        return rows

    def log(self, step: int) -> None:
        """Log the tables of every answer so far, and this step's EOS rate and answer length, to W&B."""
        at = [r for r in self.rows if r["step"] == step]
        long, wide = probe_tables(self.rows)
        self.run.log(
            {
                "probes/answers": long,
                "probes/side_by_side": wide,
                "probes/eos_rate": self.eos_rate(step),
                "probes/mean_tokens": sum(r["n_tokens"] for r in at) / len(at),
                "train/global_step": step,
            }
        )

    def eos_rate(self, step: int) -> float | None:
        at = [r["stopped_eos"] for r in self.rows if r["step"] == step]
        return sum(at) / len(at) if at else None


class ProbeCallback(TrainerCallback):
    """Runs the recorder at every evaluation; at step 0 with the adapter disabled (the base model)."""

    def __init__(self, recorder: ProbeRecorder):
        self.recorder = recorder

    def on_evaluate(self, args, state, control, model=None, processing_class=None, **kwargs):
        if not state.is_world_process_zero:
            return
        if state.global_step == 0 and hasattr(model, "disable_adapter"):
            with model.disable_adapter():
                self.recorder.record(model, processing_class, 0)
        else:
            self.recorder.record(model, processing_class, state.global_step)


class EvalAtEndCallback(TrainerCallback):
    """Evaluate (and so probe) at the last step even when it is not a multiple of eval_steps."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps:
            control.should_evaluate = True
        return control
