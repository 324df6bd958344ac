"""Every quality metric on hand-written good and bad answers, the probe specs against the knowledge table,
and the scoring CLI (no model, no torch)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from medqa.quality.lexicon import invented_terms, leaks
from medqa.quality.metrics import (
    distinct_n,
    fact_check,
    list_items,
    loop_run,
    rep_n,
    repeat_run,
    score_answer,
    segments,
    selection_score,
)
from medqa.quality.probe_specs import load_probe_set
from medqa.settings.probes import Probe, load_probes
from medqa.settings.quality import QualitySettings

ROOT = Path(__file__).resolve().parent.parent
HAND = ROOT / "tests" / "assets" / "hand_scored_answers.jsonl"
SEED = {p.id: p for p in load_probe_set("seed5")}
EYE_LOOP = "Eye yawning\nEye yawns\nEye years\nEye yolks\nEye yummy\nEye yogurt"


def score(answer: str, probe: str | None = None, stopped: bool | None = True) -> dict:
    return score_answer(answer, stopped_eos=stopped, probe=SEED[probe] if probe else None)


# --- repetition ----------------------------------------------------------------------------------------


def test_rep_n_and_distinct_follow_their_formulas():
    tokens = "a b a b".split()
    assert rep_n(tokens, 2) == pytest.approx(1 - 2 / 3)  # bigrams ab, ba, ab
    assert rep_n(tokens, 4) == 0.0 and rep_n(tokens, 5) == 0.0  # one 4-gram; no 5-gram
    assert distinct_n(tokens, 2) == pytest.approx(2 / 4)
    assert rep_n([], 2) == 0.0 and distinct_n([], 2) == 0.0


def test_sentence_loop_is_a_repetition_loop():
    m = score("It is caused by blood loss. " * 6, "iron_anemia_causes", stopped=False)
    assert m["rep_4"] > 0.7 and m["repeat_run"] == 6
    assert {"repetition_loop", "no_eos"} <= set(m["flags"])


def test_near_identical_lines_are_a_loop_but_a_normal_list_is_not():
    assert repeat_run(segments(EYE_LOOP)) == 1  # no two lines are equal ...
    assert loop_run(segments(EYE_LOOP), 0.5) == 6  # ... but each is nearly the one before
    good = "Increased thirst\nFrequent urination\nFatigue\nBlurred vision\nSlow-healing sores"
    assert loop_run(segments(good), 0.5) < 3
    assert "repetition_loop" in score(EYE_LOOP, "diabetes_early")["flags"]
    assert "repetition_loop" not in score(good, "diabetes_early")["flags"]


# --- lists ---------------------------------------------------------------------------------------------


def test_list_items_marked_bare_and_inline():
    assert list_items("Signs:\n- chest pain\n- sweating\n1. nausea")[0] == ["chest pain", "sweating", "nausea"]
    assert len(list_items(EYE_LOOP)[0]) == 6  # bare short lines
    items, _ = list_items("Causes include blood loss, heavy periods, low dietary iron and pregnancy.")
    assert len(items) == 4
    assert list_items("Blood loss is the most common cause.")[0] == []


def test_runaway_list_cut_off_too_long_or_off_topic():
    cut = "Signs include chest pain, sweating, nausea, jaw pain, arm pain"
    assert list_items(cut)[1] is True  # ends inside the list
    assert "runaway_list" in score(cut, "heart_attack_signs", stopped=False)["flags"]
    assert "runaway_list" not in score(cut + ".", "heart_attack_signs", stopped=True)["flags"]
    long = "Signs:\n" + "\n".join(f"- chest pain type {i}" for i in range(20))
    assert "runaway_list" in score(long, "heart_attack_signs")["flags"]  # 20 > 10 x 1.5
    drifting = "Signs:\n- chest pain\n- sweating\n- nausea\n- sore throat\n- ear ache\n- runny nose\n- itchy eyes"
    m = score(drifting, "heart_attack_signs")
    assert m["list_drift"] > 0.5 and "runaway_list" in m["flags"]


# --- invented terms, leakage -----------------------------------------------------------------------------


def test_invented_drug_names_are_caught_and_real_ones_are_not():
    text = "Treat with artuzofloxacin or ciprofloxacin, then lisinopril and atorvastatin; check cholesterol."
    drugs, invented = invented_terms(text)
    assert invented == ["artuzofloxacin"]
    assert {"ciprofloxacin", "lisinopril", "atorvastatin"} <= set(drugs) and "cholesterol" not in drugs
    assert invented_terms(text, known_words={"artuzofloxacin"})[1] == []  # a word of the training text
    m = score("Malaria is treated with artuzofloxacin after a blood smear and a rapid test.", "malaria_dx_tx")
    assert m["invented_rate"] == 1.0 and "invented_terms" in m["flags"]


def test_template_and_platform_leaks():
    template, filler = leaks("Hello, welcome to Chat Doctor. Rest.<|eot_id|><|start_header_id|>user<|end_header_id|>")
    assert "<|eot_id|>" in template and "<|start_header_id|>" in template
    assert {"welcome to", "chat doctor"} <= set(filler)
    assert leaks("Rest and fluids.\nassistant\nMore text")[0] == ["assistant"]  # a new turn, decoded
    assert leaks("The assistant nurse will take blood.") == ([], [])


# --- facts ---------------------------------------------------------------------------------------------


def test_expected_facts_match_synonyms_wildcards_and_plurals():
    recall, missing, forbidden = fact_check(
        "Start ramipril or an ARB; a thiazide-type diuretic also works.", SEED["hypertension_first_line"]
    )
    assert recall == pytest.approx(3 / 5) and missing == ["calcium channel blocker", "lifestyle"] and forbidden == []


def test_wrong_first_line_drug_is_a_forbidden_claim_but_a_caveat_is_not():
    probe = SEED["hypertension_first_line"]
    assert fact_check("First-line treatment is atenolol.", probe)[2] == ["a beta-blocker named as first-line treatment"]
    assert fact_check("Beta-blockers such as atenolol are not first-line.", probe)[2] == []
    m = score("First-line treatment for hypertension is atenolol, taken every morning.", "hypertension_first_line")
    assert {"forbidden_claim", "missing_facts"} <= set(m["flags"]) and m["quality"] < 0.2


# --- quality -------------------------------------------------------------------------------------------


def test_a_right_answer_to_a_narrower_point_is_acceptable_not_complete():
    """Supported items that miss every expected fact (infants' causes of anaemia; "often no symptoms, so screen")
    earn R@K up to OFF_REFERENCE_CAP: above the 0.7 line of an acceptable answer, below a complete one. Nothing
    checkable, or a wrong claim beside it, still scores near zero."""
    from medqa.quality.metrics import OFF_REFERENCE_CAP

    infants = (
        "In infants and toddlers, common causes are rapid growth combined with low dietary iron, for example drinking "
        "large amounts of cow's milk, which is low in iron, or a delay in introducing iron-rich solid foods."
    )
    screen = (
        "Many people with early type 2 diabetes have no symptoms at all, which is why screening with an HbA1c or "
        "fasting glucose test is recommended for adults from age 35."
    )
    for answer, probe in ((infants, "iron_anemia_causes"), (screen, "diabetes_early")):
        m = score(answer, probe)
        assert m["fact_recall"] == 0 and m["n_supported"] >= m["k"] and m["precision"] == 1.0, m
        assert 0.7 <= m["quality"] == OFF_REFERENCE_CAP < 0.9
    probe = "iron_anemia_causes"
    complete = score("Heavy periods, bleeding from the gut, a diet low in iron and coeliac disease.", probe)
    assert complete["quality"] > OFF_REFERENCE_CAP
    vague = score("It depends on many things, and a doctor can tell you more after looking at you.", probe)
    wrong = score("In infants, the usual cause is drinking too much water, which dilutes the blood.", probe)
    # a small model's word salad: fragments loosely match facts, repeated; no credit for that
    salad = "Symptoms: pain, pain, pain, pain, pain, and tiredness. It is usually linked to stress and tiredness."
    salad = score(salad, "heart_attack_signs")
    assert salad["fact_recall"] < 0.2 and salad["n_supported"] >= salad["k"] and salad["quality"] < 0.1, salad
    # true facts of another aspect (who gets influenza, for "which therapies"): no credit either
    from medqa.quality.heldout import heldout_questions, reference_for

    flu = next(q for q in heldout_questions() if q.question == "Which therapies are used to manage influenza?")
    aside = score_answer(
        "It is commonly seen in older adults and people with chronic illness.", reference=reference_for(flu)
    )
    assert aside["n_supported"] >= 1 and aside["n_supported_asked"] == 0 and aside["quality"] < 0.1, aside
    assert vague["quality"] < 0.1 and wrong["quality"] < 0.1


def test_no_eos_and_empty():
    m = score("Iron deficiency comes from blood loss, heavy periods, a poor diet or pregnancy.", "iron_anemia_causes")
    cut = score(
        "Iron deficiency comes from blood loss, heavy periods, a poor diet or pregnancy.", "iron_anemia_causes", False
    )
    assert "no_eos" in cut["flags"] and cut["quality"] < m["quality"]
    empty = score("   ", "iron_anemia_causes")
    assert empty["quality"] == 0.0 and "empty" in empty["flags"]


def test_hand_written_good_answers_score_clearly_above_bad_ones():
    rows = [json.loads(line) for line in HAND.read_text().splitlines()]
    scores = {
        kind: [score(r["answer"], r["probe"], r["stopped"])["quality"] for r in rows if r["kind"] == kind]
        for kind in ("good", "bad")
    }
    assert len(scores["good"]) >= 5 and len(scores["bad"]) >= 5
    assert min(scores["good"]) >= 0.9
    assert max(scores["bad"]) <= min(scores["good"]) - 0.3


def test_quality_settings_are_checked():
    with pytest.raises(ValueError, match=r"unknown component\(s\) \['fluency'\]"):
        QualitySettings(weights={"fluency": 1.0})
    with pytest.raises(ValueError, match="divergence_against"):
        QualitySettings(divergence_against="worst")
    with pytest.raises(ValueError, match=r"quality\.unchecked_cap=1\.5: must be in \[0, 1\]"):
        QualitySettings(unchecked_cap=1.5)
    with pytest.raises(ValueError, match=r"quality\.unchecked_min_words=0: must be >= 1"):
        QualitySettings(unchecked_min_words=0)
    assert QualitySettings(weights={"eos": 3.0}).weights["lists"] == 2.0  # the others keep their default


def test_bad_probe_specs_name_the_probe_and_key():
    with pytest.raises(ValueError, match=r"questions\[0\] \(x\): unknown key\(s\) \['expects'\]"):
        load_probes([{"id": "x", "question": "Q?", "expects": ["a"]}])
    with pytest.raises(ValueError, match=r"\(x\)\.expected_items"):
        load_probes([{"id": "x", "question": "Q?", "expected_items": [5, 2]}])
    with pytest.raises(ValueError, match=r"\(x\)\.forbid\[0\]"):
        load_probes([{"id": "x", "question": "Q?", "forbid": ["atenolol"]}])


# --- run level -----------------------------------------------------------------------------------------


def test_selection_score():
    assert selection_score("quality", 0.7, 0.8, 1.0) == 0.7
    assert selection_score("loss_quality", 0.7, 0.8, 1.0) == pytest.approx(0.7 - 0.8)
    with pytest.raises(ValueError, match="select_by='loss'"):
        selection_score("loss", 0.7, 0.8, 1.0)


# --- the specs agree with the embedded knowledge table ---------------------------------------------------

SPEC_SOURCES = {
    "seed5": {
        "diabetes_early": ("type 2 diabetes", ["early_symptoms"]),
        "hypertension_first_line": ("hypertension", ["first_line", "notes"]),
        "iron_anemia_causes": ("iron deficiency anemia", ["causes"]),
        "malaria_dx_tx": ("malaria", ["diagnosis", "treatment", "notes"]),
        "heart_attack_signs": ("heart attack", ["warning_signs", "first_line", "notes"]),
    },
    "embedded5": {
        "asthma_treatment": ("asthma", ["first_line", "treatment"]),
        "uti_symptoms": ("urinary tract infection", ["symptoms"]),
        "hypothyroidism_treatment": ("hypothyroidism", ["treatment"]),
        "gout_causes": ("gout", ["causes"]),
        "stroke_signs": ("stroke", ["warning_signs", "notes"]),
    },
}


@pytest.mark.parametrize("probe_set", sorted(SPEC_SOURCES))
def test_specs_agree_with_the_knowledge_table(probe_set):
    """An answer written from the knowledge table's own entry meets the spec and makes no forbidden claim."""
    table = yaml.safe_load((ROOT / "medqa" / "assets" / "knowledge.yaml").read_text())
    conditions = {c["name"]: c for c in table["conditions"]}
    probes = load_probe_set(probe_set)
    assert sorted(p.id for p in probes) == sorted(SPEC_SOURCES[probe_set])
    for probe in probes:
        name, fields = SPEC_SOURCES[probe_set][probe.id]
        answer = " ".join(", ".join(conditions[name][f]) + "." for f in fields)
        m = score_answer(answer, stopped_eos=True, probe=probe)
        assert m["fact_recall"] >= 0.5, (probe.id, m["facts_missing"])
        assert m["forbidden_claims"] in (None, []) and not m["invented_terms"], (probe.id, m)


def test_seed_week4_answers_are_flagged():
    """The seed's own failing answers, as it describes them."""
    assert "forbidden_claim" in score("Atenolol is the first-line treatment.", "hypertension_first_line")["flags"]
    assert "repetition_loop" in score(EYE_LOOP, "diabetes_early", stopped=False)["flags"]


# --- the CLI -------------------------------------------------------------------------------------------


def test_score_cli_without_a_model(tmp_path):
    answers = tmp_path / "answers.jsonl"
    lines = [
        {"question": "What are the warning signs of a HEART ATTACK", "answer": "Chest pain."},
        {"probe": "hypertension_first_line", "answer": "Atenolol first.", "stopped": True},
        {"question": "Is rest good?", "answer": "Yes, rest helps most people recover from a cold within a week."},
    ]
    answers.write_text("".join(json.dumps(line) + "\n" for line in lines))
    args = ["--answers", str(answers), "--out", str(tmp_path / "scored.jsonl"), "--allow-unmatched"]
    code = f"import sys; from medqa.cli.score import main; main({args!r}); assert 'torch' not in sys.modules, 'torch!'"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "scored.jsonl").read_text().splitlines()]
    assert [r["probe_id"] for r in rows] == ["heart_attack_signs", "hypertension_first_line", None]
    assert rows[1]["flags"] == ["missing_facts", "forbidden_claim", "unsupported_claims"]
    assert rows[0]["stopped_eos"] is None
    assert rows[2]["fact_recall"] is None and rows[2]["quality"] > 0.9
    assert "mean quality" in out.stderr and "forbidden_claim" in out.stderr


def test_score_cli_rejects_bad_input_naming_the_line(tmp_path):
    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps({"answer": "ok"}) + "\n" + json.dumps({"probe": "nope", "answer": "x"}) + "\n")
    cmd = [sys.executable, "-m", "medqa.score", "--answers", str(answers)]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert out.returncode != 0 and f"{answers}:1: question '' matches no probe question" in out.stderr
    out = subprocess.run([*cmd, "--allow-unmatched"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode != 0 and f"{answers}:2: probe 'nope' is not in the probe set" in out.stderr
    assert isinstance(Probe("a", "b"), Probe)


def test_a_specific_claim_nothing_checks_keeps_an_answer_below_verified():
    """>= 0.9 means every specific claim was checked: one that no reference fact or rule covers (a novel wrong claim
    would be one) caps the answer at quality.unchecked_cap, flags it and names the item; a denial is no claim, and
    unchecked_cap=1 turns the cap off."""
    good = (
        "Warning signs are chest pain or pressure, pain spreading to the arm, jaw or back, shortness of breath, "
        "a cold sweat and nausea. Call emergency services at once."
    )
    novel = " Cardiologists in Sweden describe the sensation as a trembling kettle behind the ribs."
    plain, capped = score(good, "heart_attack_signs"), score(good + novel, "heart_attack_signs")
    assert plain["quality"] >= 0.9 and "unchecked_claims" not in plain["flags"] and plain["unchecked"] == []
    assert capped["quality"] == QualitySettings().unchecked_cap < 0.9
    assert "unchecked_claims" in capped["flags"]
    assert capped["unchecked"] == [
        "Cardiologists in Sweden describe the sensation as a trembling kettle behind the ribs"
    ]
    denial = score(good + " Do not wait to see whether the trembling passes on its own.", "heart_attack_signs")
    assert denial["unchecked"] == []
    off = score_answer(
        good + novel, stopped_eos=True, probe=SEED["heart_attack_signs"], settings=QualitySettings(unchecked_cap=1.0)
    )
    assert off["quality"] == plain["quality"] and "unchecked_claims" not in off["flags"]


def test_one_wrong_item_in_a_long_right_list_keeps_an_answer_below_verified():
    """A list of many right signs with one of another condition (blind set 116: "a persistent dry cough with fever
    over several days" among heart-attack signs) costs little in precision, but the item is labelled unsupported,
    so the answer scores at most quality.unsupported_cap; unsupported_cap=1 turns the cap off."""
    good = (
        "Typical warning signs include:\n- Pressure or squeezing pain in the chest\n- Pain spreading to the left arm,"
        " jaw or back\n- Shortness of breath and cold sweats\n- Nausea or lightheadedness\n"
    )
    wrong = "- A persistent dry cough with fever over several days\n"
    end = "If these occur, call emergency services immediately."
    plain, capped = score(good + end, "heart_attack_signs"), score(good + wrong + end, "heart_attack_signs")
    assert plain["quality"] >= 0.9 and plain["precision"] == 1.0
    assert capped["precision"] < 1 and "unsupported_claims" in capped["flags"]
    assert capped["quality"] == QualitySettings().unsupported_cap < 0.9
    off = score_answer(
        good + wrong + end,
        stopped_eos=True,
        probe=SEED["heart_attack_signs"],
        settings=QualitySettings(unsupported_cap=1.0),
    )
    assert off["quality"] > 0.8
    with pytest.raises(ValueError, match=r"quality\.unsupported_cap=-0\.1: must be in \[0, 1\]"):
        QualitySettings(unsupported_cap=-0.1)
