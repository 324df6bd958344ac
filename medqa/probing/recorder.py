"""The fixed probe questions, answered at step 0 (base model) and at every eval, scored for quality
(medqa.quality), written to `probes.jsonl` and logged to W&B as tables and scalars beside the loss."""

from __future__ import annotations

import json
import time
from pathlib import Path

from transformers import GenerationConfig, TrainerCallback

from medqa.core.distributed import generation_is_collective, is_main_process, share_from_main
from medqa.model.generation import generate_answers, generation_config_dict
from medqa.probing.heldout_eval import HeldoutEval
from medqa.quality.metrics import aggregate, score_answer, selection_score
from medqa.quality.stats import divergence_paired, selection_report
from medqa.settings.probes import Probe, load_probes  # noqa: F401  (the probe set's home; re-exported)
from medqa.settings.quality import QualitySettings
from medqa.tracking.runs import warn
from medqa.tracking.tables import ProbeAnswerTable, side_by_side

# The metric the trainer's best-checkpoint logic reads when train.select_by is quality or loss_quality.
SELECT_METRIC = "probe_select"


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
        quality: QualitySettings | None = None,
        known_words: frozenset[str] = frozenset(),
        merge_adapter: bool = False,
        heldout: HeldoutEval | None = None,
    ):
        self.probes, self.config, self.out_file, self.run, self.seed = probes, config, out_file, run, seed
        self.heldout = heldout  # the held-out generation eval, answered after the probes at every eval
        self.merge_adapter = merge_adapter
        self.quality, self.known_words = quality or QualitySettings(), known_words
        system = [{"role": "system", "content": system_prompt}] if system_prompt else []
        self.chats = [[*system, {"role": "user", "content": p.question}] for p in probes]
        self.rows: list[dict] = []
        self.evals: list[dict] = []  # per record: step, eval_loss and the aggregates (quality, eos_rate, ...)
        self.alarms: list[dict] = []
        self.answer_table = ProbeAnswerTable()  # grows per eval in W&B (one incremental table)
        # The effective decoding travels with the answers: in the W&B run config and beside probes.jsonl.
        self.decoding = {**generation_config_dict(config), "seed": seed, "merge_adapter": merge_adapter}
        run.config.update({"decoding/generation_config": self.decoding}, allow_val_change=True)
        if is_main_process():
            sidecar = out_file.with_name(out_file.stem + ".generation_config.json")
            sidecar.write_text(json.dumps(self.decoding, indent=2))

    def _answer(self, model, tokenizer, chats: list[list[dict]]):
        merge = self.merge_adapter and not generation_is_collective(model)  # sharded weights: no merged copy
        return generate_answers(model, tokenizer, chats, self.config, seed=self.seed, merge_adapter=merge)

    def score(self, probe: Probe, answer, step: int) -> dict:
        """One probes.jsonl row: the answer (a medqa.generation.Answer) and every quality metric of it."""
        row = {
            "step": step,
            "probe_id": probe.id,
            "question": probe.question,
            "answer": answer.text,
            "stopped_eos": answer.stopped_eos,
            "n_tokens": answer.n_tokens,
        }
        metrics = score_answer(
            answer.text,
            stopped_eos=answer.stopped_eos,
            n_tokens=answer.n_tokens,
            probe=probe,
            settings=self.quality,
            known_words=self.known_words,
        )
        return row | {"quality": metrics.pop("quality"), "flags": metrics.pop("flags")} | metrics

    def record(self, model, tokenizer, step: int, eval_loss: float | None = None, write: bool = True) -> list[dict]:
        """Answer and score every probe at `step`, append to probes.jsonl, log the tables and the aggregate
        scalars (probes/quality, probes/rep_4, ...), and check loss against quality (the divergence alarm).
        `write=False`: answer only, for ranks that join a sharded model's generation."""
        began = time.perf_counter()
        answers = self._answer(model, tokenizer, self.chats)
        seconds = time.perf_counter() - began
        heldout_alarm = self.heldout.record(model, tokenizer, step, eval_loss, write) if self.heldout else None
        if not write:
            return []
        rows = [
            self.score(p, a, step) | {"generate_seconds": round(seconds, 2)}
            for p, a in zip(self.probes, answers, strict=True)
        ]
        with self.out_file.open("a", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        self.rows += rows
        probe_alarm = self._add_eval(step, eval_loss, rows)
        alarm = heldout_alarm if self.heldout else probe_alarm
        if alarm:
            self._raise(alarm)
        self.log(step)
        return rows

    def _add_eval(self, step: int, eval_loss: float | None, rows: list[dict]) -> dict | None:
        """Keep this eval's aggregates and per-probe scores beside its loss; the paired divergence alarm over the
        probes (used when the held-out eval is off: with five questions its CI rarely excludes zero)."""
        scores = {r["probe_id"]: r["quality"] for r in rows}
        self.evals.append({"step": step, "eval_loss": eval_loss, "scores": scores, **aggregate(rows)})
        if rows and "generate_seconds" in rows[0]:  # the eval's answering time, kept in its rows (replayed on resume)
            self.evals[-1]["generate_seconds"] = rows[0]["generate_seconds"]
        if eval_loss is None or self.heldout:  # with the held-out eval on, its alarm is the run's
            return None
        kw = {"n_resamples": self.quality.bootstrap_resamples}
        return divergence_paired(self.evals, self.quality.divergence_against, self.quality.divergence_margin, **kw)

    def restore(self, rows: list[dict], eval_losses: dict[int, float], heldout_rows: list[dict] = ()) -> None:
        """Rebuild what the evals up to a checkpoint recorded (resume): the kept probes.jsonl (and heldout.jsonl)
        rows, the aggregates and the alarms, so selection and the alarm go on as if the run had never stopped."""
        self.rows, self.evals, self.alarms = list(rows), [], []
        heldout_alarms = self.heldout.restore(list(heldout_rows), eval_losses) if self.heldout else []
        for step in sorted({r["step"] for r in rows}):
            alarm = self._add_eval(step, eval_losses.get(step), [r for r in rows if r["step"] == step])
            if alarm:
                self.alarms.append(alarm)
        self.alarms += heldout_alarms

    def log(self, step: int) -> None:
        """Log this step's answers (appended to the incremental table), the side-by-side table of every answer so
        far, and this step's aggregates (probes/quality, probes/eos_rate, probes/rep_4, ..., probes/divergence) to
        W&B; a resumed run replays it for the steps it keeps."""
        at = [r for r in self.rows if r["step"] == step]
        long, wide = self.answer_table.add(at), side_by_side(self.rows)
        scalars = {f"probes/{k}": v for k, v in aggregate(at).items()}
        now = self.at(step) or {}
        if "generate_seconds" in now:  # answering the five probes (not scoring them)
            scalars["probes/generate_seconds"] = now["generate_seconds"]
        scalars |= {f"probe_quality/{r['probe_id']}": r["quality"] for r in at}
        if any(e["step"] < step for e in self.evals):
            scalars["probes/divergence"] = float(any(a["step"] == step for a in self.alarms))
        self.run.log({"probes/answers": long, "probes/side_by_side": wide, **scalars, "train/global_step": step})

    def _raise(self, alarm: dict) -> None:
        """The divergence alarm: kept for run.json, a W&B alert (recorded in the offline run file too) and a
        console line."""
        self.alarms.append(alarm)
        what = "held-out quality" if self.heldout else "probe quality"
        lo, hi = alarm["drop_ci"]
        text = (
            f"step {alarm['step']}: eval loss {alarm['eval_loss']:.4f} improved on {alarm['reference_loss']:.4f} "
            f"while {what} fell {alarm['reference_quality']:.3f} -> {alarm['quality']:.3f} (step "
            f"{alarm['reference_step']}; paired drop {alarm['drop']:.3f}, 95% CI [{lo:.3f}, {hi:.3f}] over "
            f"{alarm['n_questions']} questions)"
        )
        print(f"[medqa] DIVERGENCE {text}", flush=True)
        warn(self.run, title="medqa: loss improved, answers got worse", text=text)

    def at(self, step: int) -> dict | None:
        """The probes' eval at `step` (aggregates, scores, loss), or None."""
        return next((e for e in self.evals if e["step"] == step), None)

    def quality_at(self, step: int) -> float | None:
        return (self.at(step) or {}).get("quality")

    def selection(self, rule: str, step: int) -> float:
        """The checkpoint-selection score of the eval at `step` (see medqa.quality.metrics.selection_score): on
        the held-out set's mean quality when it is on (86 questions, not 5), else the probes'."""
        now = self.at(step)
        first_loss = next((e["eval_loss"] for e in self.evals if e["eval_loss"]), None) or 1.0
        heldout = self.heldout.at(step) if self.heldout else None
        quality = heldout["quality"] if heldout else now["quality"]
        return selection_score(rule, quality, now["eval_loss"] or 0.0, first_loss)

    def selection_report(self) -> dict | None:
        """Whether the eval with the best quality is distinguishable (paired 95% CI) from the runner-up."""
        if self.heldout:
            return self.heldout.selection()
        return selection_report(self.evals, n_resamples=self.quality.bootstrap_resamples)

    def check_determinism(self, model, tokenizer, step: int | None = None) -> dict:
        """Answer the probes again as one batch and once one by one; are the texts byte-identical to each
        other and to what was recorded at `step` (the kept eval, whose weights the model now holds)? With greedy
        decoding they should be; a mismatch is worth a flag (padding or kernels changing the result). Without
        recorded answers at `step`, the batch is answered twice (one more generate call)."""
        recorded = {r["probe_id"]: r["answer"] for r in self.rows if r["step"] == step} if step is not None else {}
        if len(recorded) == len(self.probes):
            first = [recorded[p.id] for p in self.probes]
        else:
            first = [a.text for a in self._answer(model, tokenizer, self.chats)]
        again = [a.text for a in self._answer(model, tokenizer, self.chats)]
        single = [self._answer(model, tokenizer, [c])[0].text for c in self.chats]
        repeat = [a == b for a, b in zip(first, again, strict=True)]
        batching = [a == b for a, b in zip(first, single, strict=True)]
        # Seeded sampling repeats exactly, but a batch of one draws other random numbers than a batch of five:
        # for sampling only the repeat must match.
        sampling = bool(self.config.do_sample)
        consistent = [r and (b or sampling) for r, b in zip(repeat, batching, strict=True)]
        result = {
            "greedy": not sampling,
            "repeat_identical": all(repeat),
            "batched_vs_single_identical": all(batching),
            "identical": all(consistent),
            "mismatched_probes": [p.id for p, ok in zip(self.probes, consistent, strict=True) if not ok],
        }
        self.run.summary.update(
            {
                "probes/deterministic_repeat": result["repeat_identical"],
                "probes/deterministic_batching": result["batched_vs_single_identical"],
            }
        )
        return result

    def generate_seconds(self, step: int) -> dict:
        """Seconds spent answering at `step`: the probes and the held-out set."""
        out = {}
        for name, now in (("probes", self.at(step)), ("heldout", self.heldout.at(step) if self.heldout else None)):
            if now and "generate_seconds" in now:
                out[name] = now["generate_seconds"]
        return out

    def eos_rate(self, step: int) -> float | None:
        return (self.at(step) or {}).get("eos_rate")


class ProbeCallback(TrainerCallback):
    """Runs the recorder at every evaluation; at step 0 with the adapter disabled (the base model)."""

    def __init__(self, recorder: ProbeRecorder, select_by: str = "last"):
        self.recorder, self.select_by = recorder, select_by

    def on_evaluate(self, args, state, control, model=None, processing_class=None, metrics=None, **kwargs):
        # DDP: rank 0 answers on the unwrapped model while the other ranks wait at the next collective.
        # FSDP: generate is itself a collective (sharded weights), so every rank joins; rank 0 records.
        write = state.is_world_process_zero
        if write or generation_is_collective(model):
            eval_loss = (metrics or {}).get("eval_loss")
            if state.global_step == 0 and hasattr(model, "disable_adapter"):
                with model.disable_adapter():
                    self.recorder.record(model, processing_class, 0, eval_loss, write)
            else:
                self.recorder.record(model, processing_class, state.global_step, eval_loss, write)
        if self.select_by in {"quality", "loss_quality"} and metrics is not None:
            # The trainer reads the metrics dict after the callbacks, to track and keep the best checkpoint;
            # every rank must see rank 0's score, or the ranks would disagree on the best checkpoint.
            score = self.recorder.selection(self.select_by, state.global_step) if write else None
            metrics[f"eval_{SELECT_METRIC}"] = share_from_main(score)


class EvalAtEndCallback(TrainerCallback):
    """Evaluate (and so probe) at the last step even when it is not a multiple of eval_steps."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps:
            control.should_evaluate = True
        return control
