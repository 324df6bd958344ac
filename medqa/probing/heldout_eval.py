"""The generation eval beside the five probes: a held-out question set (>= 60 questions, never in the training
data) answered at every eval in batched generation, scored per question with claim-level precision
(medqa.quality), summarised with 95% bootstrap CIs over questions, and the paired rules that respect the noise:
the divergence alarm (loss improved AND the paired per-question quality drop has a CI excluding zero) and the
selection report (is the best eval distinguishable from the runner-up?).

Rows go to `heldout.jsonl` in the run dir (one per question per eval); scalars `heldout/quality`,
`heldout/quality_ci_low`, `heldout/quality_ci_high` (and the same for precision and recall, and the seconds spent
answering: `heldout/generate_seconds`) go to W&B on `train/global_step`, next to `eval/loss`."""

from __future__ import annotations

import json
import time
from pathlib import Path

from transformers import GenerationConfig

from medqa.core.distributed import generation_is_collective
from medqa.core.errors import json_lines
from medqa.core.paths import EMBEDDED_DIR
from medqa.model.generation import generate_answers
from medqa.quality.heldout import HeldoutQuestion, heldout_from_rows, heldout_questions, score_heldout
from medqa.quality.stats import divergence_paired, per_question, selection_report, summarize
from medqa.settings.data import DataSettings
from medqa.settings.quality import QualitySettings

HELDOUT_FILE = "heldout.jsonl"


def select_questions(data: DataSettings, eval_rows: list[dict], n: int) -> list[HeldoutQuestion]:
    """The held-out set of a run: the embedded world's questions built from the knowledge table when every used
    source is a shipped embedded file, else `n` questions of the run's own eval split with their reference
    answers (real data). `n` <= 0: none (the eval is off)."""
    if n <= 0:
        return []
    used = [data.sources[name] for name, share in data.mix.items() if share > 0]
    embedded = all(s.path and Path(s.path).resolve().parent == EMBEDDED_DIR.resolve() for s in used)
    if embedded:
        return _stratified(heldout_questions(), n)
    return heldout_from_rows(eval_rows, n=min(n, len(eval_rows)))


def _stratified(questions: list[HeldoutQuestion], n: int) -> list[HeldoutQuestion]:
    """The first `n` of the questions taken round-robin over aspects (all of them when n >= their number)."""
    if n >= len(questions):
        return list(questions)
    by_aspect: dict[str | None, list[HeldoutQuestion]] = {}
    for q in questions:
        by_aspect.setdefault(q.aspect, []).append(q)
    picked: list[HeldoutQuestion] = []
    while len(picked) < n:
        for group in by_aspect.values():
            if group and len(picked) < n:
                picked.append(group.pop(0))
    return picked


def eval_split_rows(eval_ds) -> list[dict]:
    """{question, answer} of a prompt/completion eval split (the last user turn and the answer)."""
    rows = []
    for prompt, completion in zip(eval_ds["prompt"], eval_ds["completion"], strict=True):
        question = next(m["content"] for m in reversed(prompt) if m["role"] == "user")
        rows.append({"question": question, "answer": completion[-1]["content"]})
    return rows


class HeldoutEval:
    """Answers and scores the held-out set at every eval; keeps per-question scores for the paired rules."""

    def __init__(
        self,
        questions: list[HeldoutQuestion],
        system_prompt: str,
        config: GenerationConfig,
        out_file: Path,
        run,
        quality: QualitySettings,
        known_words: frozenset[str] = frozenset(),
        seed: int = 0,
        merge_adapter: bool = False,
    ):
        self.questions, self.config, self.out_file, self.run = questions, config, out_file, run
        self.quality, self.known_words, self.seed, self.merge_adapter = quality, known_words, seed, merge_adapter
        system = [{"role": "system", "content": system_prompt}] if system_prompt else []
        self.chats = [[*system, {"role": "user", "content": q.question}] for q in questions]
        self.evals: list[dict] = []  # per eval: step, eval_loss, scores {question id: quality}, summary with CIs

    def answer(self, model, tokenizer) -> list:
        """Every question answered, in batches of quality.heldout_batch_size (bounded memory)."""
        merge = self.merge_adapter and not generation_is_collective(model)
        size, out = max(1, self.quality.heldout_batch_size), []
        for i in range(0, len(self.chats), size):
            chats = self.chats[i : i + size]
            out += generate_answers(model, tokenizer, chats, self.config, seed=self.seed, merge_adapter=merge)
        return out

    def record(self, model, tokenizer, step: int, eval_loss: float | None, write: bool = True) -> dict | None:
        """Answer, score, append to heldout.jsonl, log the means with their CIs; return the paired divergence
        alarm for this eval, if it fires. `write=False`: answer only (ranks joining a sharded generation)."""
        began = time.perf_counter()
        answers = self.answer(model, tokenizer)
        seconds = time.perf_counter() - began
        if not write:
            return None
        texts = {q.id: (a.text, a.stopped_eos) for q, a in zip(self.questions, answers, strict=True)}
        rows = score_heldout(self.questions, texts, settings=self.quality, known_words=self.known_words)
        rows = [{"step": step, **r, "generate_seconds": round(seconds, 2)} for r in rows]
        with self.out_file.open("a", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        alarm = self._add_eval(step, eval_loss, rows)
        self.log(step)
        return alarm

    def _add_eval(self, step: int, eval_loss: float | None, rows: list[dict]) -> dict | None:
        summary = summarize(rows, n_resamples=self.quality.bootstrap_resamples)
        seconds = rows[0].get("generate_seconds") if rows else None  # the eval's answering time, kept in its rows
        self.evals.append({"step": step, "eval_loss": eval_loss, "scores": per_question(rows), **summary})
        if seconds is not None:
            self.evals[-1]["generate_seconds"] = seconds
        if eval_loss is None:
            return None
        kw = {"n_resamples": self.quality.bootstrap_resamples}
        return divergence_paired(self.evals, self.quality.divergence_against, self.quality.divergence_margin, **kw)

    def restore(self, rows: list[dict], eval_losses: dict[int, float]) -> list[dict]:
        """Rebuild the evals up to a checkpoint (resume) from the kept heldout.jsonl rows; returns their alarms."""
        self.evals, alarms = [], []
        for step in sorted({r["step"] for r in rows}):
            alarm = self._add_eval(step, eval_losses.get(step), [r for r in rows if r["step"] == step])
            if alarm:
                alarms.append(alarm)
        return alarms

    def log(self, step: int) -> None:
        """This eval's means and 95% CIs as W&B scalars on train/global_step."""
        now = next(e for e in self.evals if e["step"] == step)
        scalars = {}
        for metric in ("quality", "precision", "recall"):
            scalars[f"heldout/{metric}"] = now.get(metric)
            scalars[f"heldout/{metric}_ci_low"] = now.get(f"{metric}_lo")
            scalars[f"heldout/{metric}_ci_high"] = now.get(f"{metric}_hi")
        scalars["heldout/n_questions"] = now.get("n")
        scalars["heldout/generate_seconds"] = now.get("generate_seconds")  # answering the set (not scoring it)
        self.run.log({**{k: v for k, v in scalars.items() if v is not None}, "train/global_step": step})

    def at(self, step: int) -> dict | None:
        """The eval at `step` (its summary with CIs), or None."""
        return next((e for e in self.evals if e["step"] == step), None)

    def selection(self) -> dict | None:
        """Which eval has the best held-out quality, and whether it is distinguishable from the runner-up."""
        return selection_report(self.evals, n_resamples=self.quality.bootstrap_resamples)


def read_rows(path: Path) -> list[dict]:
    """The rows of a heldout.jsonl ([] when the file is absent)."""
    return [row for _, row in json_lines(path)] if path.is_file() else []
