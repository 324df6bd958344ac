"""The held-out generation-eval questions: >= 60, stratified by condition and aspect, deterministic, none in the
training data; scored per question with claim labels; the same structure from real eval-split rows."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from medqa.quality.factuality import knowledge
from medqa.quality.heldout import (
    HeldoutQuestion,
    heldout_from_rows,
    heldout_questions,
    score_heldout,
    training_overlap,
    training_texts,
)
from medqa.quality.stats import summarize


def test_at_least_60_questions_stratified_and_deterministic():
    qs = heldout_questions()
    assert len(qs) >= 60 and len({q.id for q in qs}) == len(qs)
    assert {q.condition for q in qs} == {c["name"] for c in knowledge()}  # every condition
    per_aspect = Counter(q.aspect for q in qs)
    assert len(per_aspect) >= 7 and max(per_aspect.values()) - min(per_aspect.values()) <= 2, per_aspect
    assert all(q.facts for q in qs)
    assert [q.to_dict() for q in qs] == [q.to_dict() for q in heldout_questions()]
    json.dumps([q.to_dict() for q in qs])


def test_no_question_is_in_the_training_data():
    qs = heldout_questions()
    assert training_overlap(qs) == []
    phrasings, inputs = training_texts()
    assert len(phrasings) > 1000 and len(inputs) > 1000  # the check compares with the real corpus ...
    leaked = HeldoutQuestion("leak", "What are the early symptoms of type 2 diabetes?", "type 2 diabetes",
                             "early_symptoms", ("thirst",))  # fmt: skip
    assert training_overlap([leaked]) == ["leak"]  # ... and would catch a training question


def test_scoring_rewards_the_knowledge_row_and_punishes_another_conditions():
    qs = heldout_questions()[:20]
    right = {q.id: (", ".join(q.facts).capitalize() + ".", True) for q in qs}
    shifted = {q.id: right[qs[(i + 7) % len(qs)].id] for i, q in enumerate(qs)}  # another question's facts
    good, bad = score_heldout(qs, right), score_heldout(qs, shifted)
    assert summarize(good)["quality"] > 0.8 and summarize(bad)["quality"] < 0.2
    assert all(isinstance(r["claims"], list) and "precision" in r and "recall" in r for r in good)
    with pytest.raises(ValueError, match="no answer for 20 question"):
        score_heldout(qs, {})


def test_real_data_rows_become_questions_with_reference_facts():
    rows = [
        {"input": "How is a sprained ankle treated?", "output": "Rest, ice, compression and elevation; see a doctor "
         "if you cannot bear weight."},
        {"input": "What causes heartburn?", "output": "Large meals, lying down after eating, alcohol and smoking."},
    ]  # fmt: skip
    qs = heldout_from_rows(rows, "input", "output")
    assert [q.id for q in qs] == ["row_0", "row_1"] and "ice" in qs[0].facts and qs[0].condition is None
    scored = score_heldout(qs, {"row_0": ("Rest it, put ice on it and keep it raised up.", True),
                                "row_1": ("Big meals, alcohol and smoking can all bring it on.", True)})  # fmt: skip
    assert all(r["n_supported"] >= 2 and r["n_unsupported"] == 0 for r in scored), scored
    with pytest.raises(ValueError, match="eval row 1: needs non-empty 'input' and 'output'"):
        heldout_from_rows([rows[0], {"input": "x"}], "input", "output")
