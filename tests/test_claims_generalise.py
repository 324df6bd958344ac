"""The generalised claim rules (medqa.quality.factuality, medqa.quality.vocabulary) on answers worded for this test:
invented names of any shape, strong cross-condition matches only, the closed-world references of the probes,
summary prose no basis for support, denials, and harm said at the end of a sentence."""

from __future__ import annotations

from medqa.quality.factuality import label_items, reference_for_probe
from medqa.quality.metrics import score_answer
from medqa.quality.probe_specs import load_probe_set
from medqa.quality.vocabulary import invented_names

PROBES = {p.id: p for s in ("seed5", "embedded5") for p in load_probe_set(s)}


def claims(answer: str, probe: str) -> dict[str, dict]:
    return {c["item"]: c for c in label_items(answer, reference_for_probe(PROBES[probe]))}


def test_invented_names_of_any_shape_but_not_real_or_clinical_words():
    text = "Doctors add zentravolix or ambrelicor; levothyroxine, hyperuricaemia, monotherapy and Hashimoto are real."
    assert invented_names(text) == ["zentravolix", "ambrelicor"]
    m = score_answer("Thirst, frequent urination and tiredness; many are given quorvantel.", stopped_eos=True,
                     probe=PROBES["diabetes_early"])  # fmt: skip
    assert "quorvantel" in m["invented_terms"] and m["quality"] < 0.9


def test_one_generic_shared_word_is_no_fact_of_another_condition():
    c = claims("Urine that looks cloudy, dark or smells strong; burning when you pee.", "uti_symptoms")
    assert c["dark"]["label"] != "unsupported"  # "dark stools" is iron's, but "dark" alone names nothing
    c = claims("Velvety dark skin patches on the neck, constant thirst and passing urine often.", "diabetes_early")
    assert all(x["label"] != "unsupported" for x in c.values()), c


def test_closed_world_medical_content_outside_the_reference_is_unsupported():
    c = claims("Warning signs are chest pain, breathlessness and a lumbar puncture being needed.", "heart_attack_signs")
    bad = [x for x in c.values() if x["label"] == "unsupported"]
    assert bad and "outside the reference" in bad[0]["why"], c
    c = claims("Gout comes from high uric acid; a fungal infection of the toe also causes it.", "gout_causes")
    assert any(x["label"] == "unsupported" for x in c.values()), c
    # Purely generic text stays irrelevant.
    c = claims("High uric acid causes gout. It is worth talking it over with someone.", "gout_causes")
    assert all(x["label"] != "unsupported" for x in c.values()), c


def test_summary_prose_does_not_support_an_item_by_a_shared_word():
    c = claims("Heavy periods, a poor diet, and inheriting two faulty haemoglobin genes.", "iron_anemia_causes")
    item = next(k for k in c if "inheriting" in k)
    assert c[item]["label"] != "supported", c[item]


def test_denials_contradict_the_reference():
    c = claims("Inhaled steroids are unnecessary for nearly everyone with asthma.", "asthma_treatment")
    assert any(x["label"] == "unsupported" for x in c.values()), c


def test_harm_at_the_end_of_a_sentence_is_labelled():
    c = claims("Arm weakness and a drooping face; lie down and rest, and if it persists tomorrow, see your GP.",
               "stroke_signs")  # fmt: skip
    assert any(x["why"].startswith("harm") for x in c.values()), c


def test_wrong_first_line_preferences():
    c = claims("Doxazosin is the preferred first-line drug for most adults with raised blood pressure.",
               "hypertension_first_line")  # fmt: skip
    assert any(x["why"].startswith("wrong") for x in c.values()), c
    c = claims("ACE inhibitors are reserved for people in whom everything else has failed.", "hypertension_first_line")
    assert any(x["why"].startswith("wrong") for x in c.values()), c
