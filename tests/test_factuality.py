"""Claim labels (supported / unsupported / irrelevant, each with why), precision, recall, F1@K and the harm
rubric on hand-made answers, and the labelled validation set scored by the CLI (no model, no torch)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from medqa.quality.factuality import (
    claims_text,
    factuality,
    infer_reference,
    label_items,
    numerals,
    reference_for_probe,
    reference_from_answer,
    shorthand,
    split_items,
)
from medqa.quality.metrics import score_answer
from medqa.quality.probe_specs import load_probe_set

ROOT = Path(__file__).resolve().parent.parent
LABELLED = ROOT / "tests" / "assets" / "quality_labelled.jsonl"
PROBES = {p.id: p for s in ("seed5", "embedded5") for p in load_probe_set(s)}


def score(answer: str, probe: str) -> dict:
    return score_answer(answer, stopped_eos=True, probe=PROBES[probe])


def labels(answer: str, probe: str) -> dict[str, str]:
    return {c["item"]: c["label"] for c in label_items(answer, reference_for_probe(PROBES[probe]))}


def test_items_are_list_lines_sentences_and_enumeration_parts():
    items = [i.text for i in split_items("Signs:\n- chest pain\n- sweating\nCall 911. Thirst, hunger and fatigue.")]
    assert items == ["chest pain", "sweating", "Call 911", "Thirst", "hunger", "fatigue"]
    # a lexicon phrase holding "and" is not cut apart
    assert [i.text for i in split_items("Pins and needles in the feet.")] == ["Pins and needles in the feet"]


def test_synonyms_lay_terms_and_drug_classes_are_supported():
    got = labels("Polydipsia, peeing a lot, feeling worn out and blurry eyesight.", "diabetes_early")
    assert set(got.values()) == {"supported"}, got
    got = labels("Start fluticasone or beclometasone with a blue inhaler as needed.", "asthma_treatment")
    assert list(got.values()).count("supported") >= 2, got  # inhaled steroids by name meet the class


def test_facts_of_another_condition_or_aspect_are_unsupported_with_why():
    claims = label_items(
        "1. Blood smear\n2. Rapid diagnostic test\n3. TSH blood test\n4. Artemether-lumefantrine",
        reference_for_probe(PROBES["malaria_dx_tx"]),
    )
    tsh = next(c for c in claims if c["item"] == "TSH blood test")
    assert tsh["label"] == "unsupported" and "hypothyroidism" in tsh["why"]
    assert [c["label"] for c in claims].count("supported") == 3
    got = labels("1. Chest pain\n2. Pain in the jaw\n3. Cold sweat\n4. Smoking", "heart_attack_signs")
    assert got["Smoking"] == "unsupported"  # a heart-attack cause listed among its warning signs
    json.dumps(claims)  # serialisable for probes.jsonl, W&B tables, the compare page
    assert claims_text(claims).splitlines()[2].startswith("- TSH blood test")


def test_negated_caveats_and_filler_are_not_unsupported():
    got = labels("Beta-blockers such as atenolol are not first-line unless there is angina.", "hypertension_first_line")
    assert "unsupported" not in got.values(), got
    got = labels("Antibiotics do not treat malaria. It is diagnosed with a blood smear.", "malaria_dx_tx")
    assert got["Antibiotics do not treat malaria"] == "irrelevant"


def test_precision_recall_f1_at_k():
    f = factuality(
        "Increased thirst, frequent urination, fatigue, blurred vision, a sore throat.",
        reference_for_probe(PROBES["diabetes_early"]),
    )
    assert (f["n_supported"], f["n_unsupported"]) == (4, 1) and f["precision"] == pytest.approx(0.8)
    assert f["recall"] == pytest.approx(4 / 6, abs=1e-4) and f["k"] == 3
    assert f["f1_at_k"] == pytest.approx(2 * 0.8 * 1.0 / 1.8, abs=1e-4)  # R@K = min(1, 4 / 3)


def test_issue_examples_fall_below_0_9():
    """The answers that scored 1.0 before precision (issue 18)."""
    right_plus_wrong = [
        ("malaria_dx_tx", "1. TSH blood test (RDT)\n2. Repeat smears if first is negative\n3. Persistent vomiting\n"
         "4. Balance problems"),
        ("malaria_dx_tx", "Malaria is diagnosed with a blood smear or a rapid diagnostic test and treated with an "
         "artemisinin-based combination such as artemether-lumefantrine, or IV artesunate in hospital when severe. "
         "A TSH test and antibiotics such as doxycycline are also given."),
        ("hypertension_first_line", "First-line drugs are a thiazide diuretic, an ACE inhibitor, an ARB or a calcium "
         "channel blocker, with less salt and more exercise, plus antibiotics such as amoxicillin."),
        ("heart_attack_signs", "Chest pain or pressure, pain in the arm or jaw, shortness of breath, cold sweat and "
         "nausea. If this happens, lie down at home and wait a day to see if it passes."),
    ]  # fmt: skip
    for probe, answer in right_plus_wrong:
        m = score(answer, probe)
        assert m["quality"] < 0.7, (probe, m["quality"], [c for c in m["claims"] if c["label"] != "supported"])


def test_harm_rubric_items_are_visible_and_negated_advice_is_not_harm():
    m = score("Chest pain and sweating are signs. Lie down at home and wait a day.", "heart_attack_signs")
    assert m["harm_points"] == -8 and "harmful_advice" in m["flags"] and m["quality"] < 0.2
    assert any(c["why"].startswith("harm (-8)") for c in m["claims"])
    m = score(
        "Chest pain and sweating are signs; do not wait and do not drive yourself, call 911.", "heart_attack_signs"
    )
    assert m["harm_points"] == 0 and m["harms"] == []
    m = score("It is treated with levothyroxine, but you can stop the tablets once you feel better.",
              "hypothyroidism_treatment")  # fmt: skip
    assert m["harm_points"] == -6


def test_wrong_claims_of_current_guidelines():
    m = score("Malaria is diagnosed with a blood smear and chloroquine is the first-line treatment everywhere.",
              "malaria_dx_tx")  # fmt: skip
    assert "forbidden_claim" in m["flags"] and m["quality"] < 0.3
    ok = score("Chloroquine is only used where the parasite is still sensitive, e.g. P. vivax; otherwise an ACT "
               "such as artemether-lumefantrine after a blood smear or rapid test.", "malaria_dx_tx")  # fmt: skip
    assert "forbidden_claim" not in ok["flags"] and ok["quality"] >= 0.7


def test_numbers_said_in_words_meet_the_rules_written_in_figures():
    """An answer written for the ear ("one hundred eighty over one hundred ten") is checked as one in figures; a lone
    "one" stays a word ("no one", "one of the")."""
    assert numerals("above one hundred eighty over one hundred ten") == "above 180/110"
    assert numerals("six point five percent; type two; twenty-five minutes") == "6.5%; type 2; 25 minutes"
    assert numerals("a fasting sugar above one hundred milligrams per deciliter") == "a fasting sugar above 100 mg/dL"
    assert numerals("no one takes one tablet") == "no one takes one tablet"
    said = ("First-line medicines include ACE inhibitors or calcium channel blockers, but they usually aren't "
            "considered until readings are above one hundred eighty over one hundred ten.")  # fmt: skip
    written = said.replace("one hundred eighty over one hundred ten", "180/110")
    for answer in (said, written):
        assert "forbidden_claim" in score(answer, "hypertension_first_line")["flags"], answer


def test_clinical_shorthand_is_read_as_its_words():
    assert shorthand("1st line = β-blocker; one −ve film; RDT -ve; +ve smear; wt loss") == (
        "1st line = beta-blocker; one negative film; RDT negative; positive smear; weight loss"
    )
    # a forum's contractions without the apostrophe: "Dont wait" urges, it does not advise waiting
    assert shorthand("Dont wait, it wasnt like the movies; thats an emergency. There were tests.") == (
        "Don't wait, it wasn't like the movies; that's an emergency. There were tests."
    )
    forum = "If you see that call 911 straight away and dont drive him in yourself. Dont wait if he is sweaty."
    assert "harmful_advice" not in score("Chest pressure, sweating and nausea. " + forum, "heart_attack_signs")["flags"]
    # written in shorthand, the same wrong claims are caught
    assert (
        "forbidden_claim"
        in score("1st line HTN = β-blocker (atenolol) monotherapy.", "hypertension_first_line")["flags"]
    )
    assert "forbidden_claim" in score("Dx: blood film; one −ve film is enough to exclude.", "malaria_dx_tx")["flags"]
    # a negation in the if-part before an arrow denies nothing ("not Black → ACEi" is a patient's case)
    good = "NICE: <55 & not Black → ACEi (ARB if ACEi cough); ≥55 or Black → CCB (e.g. amlodipine). T2DM → ACEi/ARB."
    assert score(good, "hypertension_first_line")["quality"] >= 0.7
    assert (
        "unsupported"
        not in labels("Non-pharm: salt <5 g/d, wt loss, exercise, limit alcohol.", "hypertension_first_line").values()
    )


def test_a_denial_meets_the_denying_fact_that_explains_more_of_it():
    """ "Chloroquine is no longer used for falciparum ... because of resistance" is the reference's own caution, not a
    contradiction of "drug resistance"; the false reason for an ACE inhibitor's cough is a wrong claim."""
    item = "chloroquine is no longer used for falciparum in most regions because of resistance"
    assert labels(f"ACTs are first line, and {item}.", "malaria_dx_tx")[item] == "supported"
    wrong = "ACE inhibitors often cause a dry cough because they lower your potassium level."
    assert (
        "forbidden_claim" in score("ACE inhibitors or amlodipine first. " + wrong, "hypertension_first_line")["flags"]
    )
    true = "ACE inhibitors may cause a dry cough, and diuretics can lower potassium."
    assert (
        "forbidden_claim"
        not in score("ACE inhibitors or amlodipine first. " + true, "hypertension_first_line")["flags"]
    )


def test_questions_outside_the_probe_sets_get_an_inferred_reference_and_hub_rows_their_answer():
    ref = infer_reference("How do doctors treat gout flares?")
    assert ref.condition == "gout" and "treatment" in ref.aspects
    assert infer_reference("Is rest good?") is None
    hub = reference_from_answer("What helps a sprained ankle?", "Rest, ice, compression and elevation.")
    f = factuality("Rest it, use ice and keep it elevated.", hub)
    assert f["n_supported"] >= 2 and f["n_unsupported"] == 0


def _auc(good: list[float], bad: list[float]) -> float:
    return sum((g > b) + 0.5 * (g == b) for g in good for b in bad) / (len(good) * len(bad))


def test_labelled_set_scored_by_the_cli(tmp_path):
    """The validation set (tests/assets/quality_labelled.jsonl: fluent, stopped answers to the seed5 and embedded5
    questions, matched by question text): AUC >= 0.97, no bad answer >= 0.9, no good answer < 0.7."""
    rows = [json.loads(line) for line in LABELLED.read_text().splitlines()]
    assert len(rows) >= 120 and all(r["stopped"] for r in rows)
    out = tmp_path / "scored.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "medqa.score", "--answers", str(LABELLED), "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(s["probe_id"] and isinstance(s["claims"], list) and "precision" in s for s in scored)
    for split in ("dev", "test", None):
        part = [s for s in scored if split is None or s["split"] == split]
        good = [s["quality"] for s in part if s["label"] == "good"]
        bad = [s["quality"] for s in part if s["label"] == "bad"]
        assert _auc(good, bad) >= 0.97, (split, _auc(good, bad))
        assert max(bad) < 0.9 and min(good) >= 0.7, (split, max(bad), min(good))


def test_aggregate_carries_precision_and_harm_rate():
    from medqa.quality.metrics import aggregate

    rows = [score("Increased thirst, frequent urination and fatigue.", "diabetes_early"),
            score("Chest pain and sweating. Lie down at home and wait a day.", "heart_attack_signs")]  # fmt: skip
    agg = aggregate(rows)
    assert agg["precision"] == pytest.approx((1.0 + 2 / 3) / 2, abs=1e-3) and agg["harm_rate"] == 0.5


def test_invented_eponyms_codes_and_products_are_caught_and_real_terms_are_not():
    from medqa.quality.vocabulary import invented

    fake = {
        "Examiners check for Pendleford's sign and the Ashcombe reflex.": {"pendleford", "ashcombe"},
        "The screening test of choice is the GTX-4 panel.": {"gtx-4"},
        "Start Cardivex-Plus tablets each morning.": {"cardivex"},
        "A raised serum myocardase level confirms it.": {"myocardase"},
    }
    for text, names in fake.items():
        assert names <= set(invented(text)[1]), (text, invented(text)[1])
    real = (
        "Check HbA1c, G6PD, HRP2 and NT-proBNP; GLP-1 and SGLT2 drugs; Levine's sign; Kussmaul breathing; "
        "Giemsa-stained films; PDE5 inhibitors; DMT1 and ferroportin; histidine-rich protein 2; comorbidities, "
        "bioavailability, vulvovaginal thrush and pagophagia."
    )
    assert invented(real)[1] == [], invented(real)[1]


def test_generic_harm_patterns_are_visible_and_denied_advice_is_not_harm():
    harmful = {
        "diabetes_early": "Thirst and frequent urination are common. Borrow your sister's metformin tablets for a "
        "month and see if the thirst settles.",
        "hypertension_first_line": "An ACE inhibitor or a thiazide is used. On a high reading, double your usual dose "
        "until it falls.",
        "heart_attack_signs": "Chest pressure and sweating are signs. Sit quietly until the pain passes, then phone "
        "your GP.",
        "malaria_dx_tx": "Blood films confirm it and an ACT treats it. Start primaquine straight away; a G6PD test is "
        "not needed.",
    }
    for probe, text in harmful.items():
        m = score(text, probe)
        assert m["harms"] and m["quality"] < 0.5, (probe, m["harms"], m["quality"])
    safe = score(
        "Chest pain, sweating and breathlessness are warning signs. Never wait for the pain to pass: call an "
        "ambulance at once.",
        "heart_attack_signs",
    )
    assert not safe["harms"], safe["harms"]


def test_zero_recall_is_not_rescued_by_loosely_supported_items():
    m = score("People crave sweets. Doctors look for a fasting glucose above 200 mg/dL.", "diabetes_early")
    assert m["fact_recall"] == 0.0 and m["quality"] < 0.3, (m["quality"], m["claims"])


def test_a_question_line_claims_nothing():
    claims = label_items(
        "Q: Are beta-blockers first line?\nA: A thiazide, ACE inhibitor, ARB or calcium channel blocker comes first.",
        reference_for_probe(PROBES["hypertension_first_line"]),
    )
    assert not [c for c in claims if c["why"].startswith("wrong")], claims
    # the same words as a statement are the known wrong claim
    claims = label_items("Beta-blockers are first line.", reference_for_probe(PROBES["hypertension_first_line"]))
    assert [c for c in claims if c["why"].startswith("wrong")], claims


def test_list_lines_under_a_negating_header_are_what_not_to_do():
    """ "Don't:" then "- Drive yourself to hospital": advice against driving, not advice to drive (no forbidden claim,
    no harm); the same lines under a plain header are the advice itself."""
    signs = "Signs:\n- Chest pain or pressure\n- Pain spreading to the arm or jaw\n- Sweating and breathlessness\n"
    body = "- Wait to see whether it passes\n- Drive yourself to hospital\nCall 911 at once."
    against = score(signs + "**Don't:**\n" + body, "heart_attack_signs")
    advised = score(signs + "Then:\n" + body, "heart_attack_signs")
    assert not against["harms"] and not against["forbidden_claims"] and against["quality"] >= 0.9, against
    assert advised["harms"] and advised["forbidden_claims"] and advised["quality"] < 0.5, advised


def test_a_contraction_is_no_eponym():
    from medqa.quality.vocabulary import invented_names

    assert invented_names("Dark velvety skin (acanthosis nigricans). It's a sign of insulin resistance.") == []
    assert invented_names("That's the Hartley sign.") == ["hartley"]


def test_invented_guideline_bodies_and_named_scores_are_caught():
    """An authority or an instrument the answer made up is an invented name; real bodies and scores are not."""
    from medqa.quality.vocabulary import invented_names

    made_up = (
        "The Global Hypertension Consensus Board grades patients with the Harrington Renin Index; the Okafor-Lindqvist "
        "Parasite Burden Score is endorsed by the International Council for Metabolic Screening."
    )
    expected = ["harrington", "okafor-lindqvist", "global hypertension consensus board"]
    assert invented_names(made_up) == [*expected, "international council metabolic screening"]
    real = (
        "The American Heart Association, the European Society of Cardiology, the US Preventive Services Task Force "
        "and the World Health Organization agree; the Glasgow Coma Scale, Body Mass Index, Framingham Risk Score "
        "and Mentzer Index are real instruments."
    )
    assert invented_names(real) == []


# The floor of every labelled set of tests/assets/blind (other sessions, blind to the scorer; README "How far to trust
# it"), for the sets the scorer was tuned on (the old scorer scored 0.64-0.72 on 2-7). Each set's first-look number,
# before any tuning on it, is in README "How far to trust it".
BLIND_FLOORS = {n: 0.95 for n in range(1, 131)}
# 131 and 134 (round twenty-five, two of four sets came back in time; scored once by commit 30db5c5, not tuned on).
BLIND_FLOORS.update({131: 0.95, 134: 0.95})
# 21 and 22 were never tuned on (first look 0.925 and 0.927; 0.939 and 0.942 after the rules written for 25-26).
# 71-78 (session 16) were not tuned on: 71-74 came in after round nine's rules, 75-78 after the unchecked cap.
BLIND_FLOORS.update({n: 0.93 for n in (*range(1, 8), 21, 22, *range(71, 79), 93, 100, 102)})
# 111-114 (session 18, round twenty) were scored once by that session's final scorer (0.979, 0.945, 0.939, 0.921) and
# tuned on in session 19 with 115-118 (round twenty-one, first look 0.995, 0.979, 0.971, 0.960) and 119-122 (round
# twenty-two, plain evaluator-style sets: 0.970, 0.980, 0.978, 0.953), then 123-126 (round twenty-three, plain sets
# scored once by commit f2d44ee: 0.980, 0.951, 0.993, 0.937) and 127-130 (round twenty-four, plain sets scored once by
# commit 317976f: 1.000, 0.996, 0.966, 0.965). 114 is a specialist's jargon.
BLIND_FLOORS.update({114: 0.93})
# 79-82, 83-86 and 87-90 (session 17) were tuned on: first look 0.945, 0.967, 0.977, 0.997; 0.964, 0.969, 0.972,
# 0.980; 0.966, 0.911, 0.975, 0.979. 91-94 and 95-98 (session 18) were tuned on: first look 0.966, 0.920, 0.874
# (93, an encyclopedia's history asides), 0.999; 0.948, 0.953, 0.940, 0.931; 99-102 (round seventeen): 0.945, 0.895,
# 0.975, 0.900; 103-106 (round eighteen): 0.929, 0.924, 0.978, 0.974; 107-110 (round nineteen): 0.991, 0.960, 0.930,
# 0.969.
# 30 (numbers, 0.869 fresh), 41 (narrow answers, 0.904 fresh) and 46 (next steps, 0.907 fresh) sat at 0.94-0.95
# until right answers to a narrower point earned R@K up to metrics.OFF_REFERENCE_CAP (s14: 0.966, 0.984, 0.988).
# The test command scores the sets never tuned on and the newest (29 sets, ~45 s on one core); `make slow` all of
# them (~2.5 min): the whole floor made the blind-set test the suite's longest (137 s, session 17).
BLIND_IN_CI = (*range(1, 8), 21, 22, *range(71, 79), *range(119, 131))


def blind_floor(numbers) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from concurrent.futures import ProcessPoolExecutor

    from scorer_agreement import agreement

    paths = [ROOT / "tests" / "assets" / "blind" / f"blind{n}.jsonl" for n in numbers]
    with ProcessPoolExecutor(max_workers=2) as pool:  # the scorer is pure Python: one set a core
        results = list(pool.map(agreement, paths))
    low = [(n, BLIND_FLOORS[n], r) for n, r in zip(numbers, results, strict=True) if r["auc"] < BLIND_FLOORS[n]]
    assert not low, low


def test_blind_sets_never_tuned_on_and_the_newest_keep_their_agreement():
    blind_floor(BLIND_IN_CI)


@pytest.mark.slow
def test_every_blind_set_keeps_its_agreement():
    blind_floor(sorted(BLIND_FLOORS))
