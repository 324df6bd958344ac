"""Each cleaning rule on hand-written messy rows, and rows that must come through untouched."""

from __future__ import annotations

import dataclasses

import pytest

from medqa.data.cleaning import (
    clean_rows,
    drop_trailing_filler,
    has_residual_filler,
    is_list_formatted,
    ocr_residue,
    repair_ocr,
    strip_filler,
)
from medqa.settings.data import DEFAULT_FILLER_KEYWORDS, CleaningSettings

BODY = "Your blood pressure of 150/95 needs treatment, and an ACE inhibitor is a good first choice."
# Rows a cleaner must never touch: clinical prose with abbreviations, units, numbers, a list, a name.
UNTOUCHED = [
    BODY,
    "His HbA1c is 7.4%, IgM antibodies are negative, urine pH is 6.0 and creatinine is 1.1 mg/dL (NT-proBNP normal).",
    "Thanks to early treatment, most patients recover fully. Consult a cardiologist if the chest pain returns.",
    "Iron deficiency has several causes:\n- heavy periods\n- gut bleeding\n1. Check ferritin.\n2) Replace iron.",
    "Hib vaccine and the McDonald criteria are used in children; doses of 1,000 mg are split. Welcome news: it works.",
]
SEED = CleaningSettings(
    platform_in_input=True,
    ocr_repair=True,
    ocr_residue="drop",
    strip_filler=True,
    trailing_filler=True,
    residual_filler="drop",
    min_answer_words=5,
    max_words=60,
)


@pytest.mark.parametrize("text", UNTOUCHED)
def test_clean_text_survives_every_rule_untouched(text):
    assert strip_filler(text)[0] == text
    assert repair_ocr(text) == text and ocr_residue(text) == []
    assert not has_residual_filler(text)
    kept, counts = clean_rows([f"question {len(text)}"], [text], SEED, "t")
    assert kept == [(0, f"question {len(text)}", text)]
    assert all(c.changed == c.dropped == 0 for c in counts)


@pytest.mark.parametrize(
    ("messy", "clean"),
    [
        (f"Hello, welcome to Chat Doctor. {BODY} Take care.", BODY),
        (f"Hi, thank you for posting your query. {BODY} Regards, Dr. Priya Nair", BODY),
        (f"Hello and welcome to ChatDoctor forum. {BODY} Wish you good health.", BODY),
        (f"Hi, I have gone through your query. {BODY} Hope this helps. Best wishes.", BODY),
        ("Hi, your blood pressure is high.", "Your blood pressure is high."),  # salutation only, re-capitalised
    ],
)
def test_greetings_and_sign_offs_are_stripped(messy, clean):
    assert strip_filler(messy)[0] == clean


def test_second_pass_catches_what_the_first_exposed():
    text = f"{BODY} Hope this helps. Let me know if you need anything else. Feel free to ask. Take care."
    once, changed = strip_filler(text, passes=1)
    assert once == f"{BODY} Hope this helps. Let me know if you need anything else. Feel free to ask."
    twice, changed = strip_filler(text, passes=2)
    assert twice == f"{BODY} Hope this helps. Let me know if you need anything else." and changed == [True, True]
    assert has_residual_filler(twice)  # the seed dropped such rows; the trailing-filler rule saves them
    assert drop_trailing_filler(twice, DEFAULT_FILLER_KEYWORDS) == BODY


def test_trailing_filler_drops_whole_sentences_with_a_keyword_but_never_the_last_one():
    text = f"{BODY} You can revert back with the reports and I will review them."
    assert drop_trailing_filler(text, DEFAULT_FILLER_KEYWORDS) == BODY
    assert drop_trailing_filler("Hope you recover soon.", DEFAULT_FILLER_KEYWORDS) == "Hope you recover soon."
    assert drop_trailing_filler(f"{BODY} Hope so.", ["diabetes"]) == f"{BODY} Hope so."  # keywords are config


@pytest.mark.parametrize(
    ("glitched", "repaired"),
    [
        ("HiT hanks for the query. Your TSH is high.", "Hi. Thanks for the query. Your TSH is high."),
        ("HelloThanks for asking on Chat Doctor.", "Hello. Thanks for asking on Chat Doctor."),
        (
            "Hello, welcome to Chat Doctor.I have gone through your query.",
            "Hello, welcome to Chat Doctor. I have gone through your query.",
        ),
        ("Hi.Thanks for your query.", "Hi. Thanks for your query."),
        ("Hello,welcome to Chat Doctor.", "Hello, welcome to Chat Doctor."),
    ],
)
def test_ocr_glitches_are_repaired_then_stripped(glitched, repaired):
    assert repair_ocr(glitched) == repaired
    assert ocr_residue(repaired) == []


def test_unrepairable_ocr_is_detected_and_dropped_or_flagged():
    text = f"KneeP ain on stairs is common. Please TakeMetformin with food. {BODY}"
    assert repair_ocr(text) == text  # "pain" is not a word the repair may guess
    assert ocr_residue(text) == ["KneeP ain", "TakeMetformin"]
    answers = [text, BODY]
    kept, counts = clean_rows(["q1", "q2"], answers, CleaningSettings(ocr_residue="drop"), "t")
    assert [r[0] for r in kept] == [1] and counts[1].rule == "ocr_residue_drop" and counts[1].dropped == 1
    kept, counts = clean_rows(["q1", "q2"], answers, CleaningSettings(ocr_residue="flag"), "t")
    assert len(kept) == 2 and counts[1].flagged == 1 and counts[1].examples == [0]


def test_seed_filters_platform_length_and_residual_filler():
    questions = ["I found Chat Doctor online. " + "q", "short answer", "long", "stays", "residual"]
    answers = [BODY, "Take the tablets.", " ".join(["word"] * 61), BODY, f"Thanks a lot. {BODY}"]
    kept, counts = clean_rows(questions, answers, dataclasses.replace(SEED, trailing_filler=False), "t")
    by_rule = {c.rule: c for c in counts}
    assert by_rule["platform_in_input"].examples == [0]
    assert by_rule["min_answer_words_5"].examples == [1]
    assert by_rule["max_words_60"].examples == [2]
    assert [r[0] for r in kept] == [3, 4] and kept[1][2] == BODY  # "Thanks a lot." is a greeting sentence


def test_rule_counts_chain_and_structural_checks():
    questions = ["q0", None, "q2", 5, "q4", "q0", "q6"]
    answers = ["Hi. " + BODY, "a", "   ", "a", BODY, "Hi. " + BODY, "Hello. Take care."]
    kept, counts = clean_rows(questions, answers, SEED, "data.sources.x (x.jsonl)")
    by_rule = {c.rule: c for c in counts}
    assert by_rule["bad_rows"].dropped == 3 and by_rule["bad_rows"].examples == [1, 2, 3]
    assert by_rule["strip_filler_pass1"].changed == 3
    assert by_rule["empty_after_strip"].examples == [6]
    assert by_rule["duplicate"].examples == [5]  # equal after cleaning: row 5 repeats row 0
    assert [r[0] for r in kept] == [0, 4]
    remaining = [c.remaining for c in counts]
    assert remaining == sorted(remaining, reverse=True) and remaining[-1] == len(kept)
    assert len(questions) - sum(c.dropped for c in counts) == len(kept)


def test_bad_rows_error_names_the_source_and_row():
    with pytest.raises(ValueError, match=r"data.sources.x \(x.jsonl\): row 1: answer is a int, not a string"):
        clean_rows(["q", "q2"], ["a", 3], CleaningSettings(bad_rows="error"), "data.sources.x (x.jsonl)")
    with pytest.raises(ValueError, match=r"t.ocr_residue='maybe'"):
        clean_rows([], [], CleaningSettings(ocr_residue="maybe"), "t")


def test_list_formatted_answers():
    assert is_list_formatted("Causes:\n- heavy periods") and is_list_formatted("Steps:\n  1. rest\n  2) fluids")
    assert is_list_formatted("\u2022 fever")
    assert not is_list_formatted("Give 1.5 mg daily - not more.") and not is_list_formatted(BODY)
