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


def nothing_unsupported(c: dict[str, dict]) -> None:
    assert all(x["label"] != "unsupported" for x in c.values()), c


def some_labelled(c: dict[str, dict], why: str, context: object = None) -> None:
    """At least one item's reason starts with `why` ("wrong", "harm")."""
    assert any(x["why"].startswith(why) for x in c.values()), (context, c)


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


def test_text_message_and_prescription_shorthand_split_and_read_as_prose():
    from medqa.quality.factuality import split_items

    text = "honestly no one best drug. guidance lists ACEi, ARB or CCB.\nTab. Atenolol OD"
    items = [i.text for i in split_items(text)]
    assert "honestly no one best drug" in items and "guidance lists ACEi" in items, items  # a lower-case sentence
    assert "tablet Atenolol once daily" in items, items
    items = [i.text for i in split_items("Keep to 1,500 mg of sodium a day, or less.")]
    assert "Keep to 1500 mg of sodium a day" in items, items  # a thousands comma splits no list
    # "dont wait" in a text message is the advice not to wait, for the probe's forbidden claims too
    m = score_answer("chest pain with sweating or breathlessness = ambulance. dont wait and see.", stopped_eos=True,
                     probe=PROBES["heart_attack_signs"])  # fmt: skip
    assert not m["forbidden_claims"], m["forbidden_claims"]


def test_made_up_qualifiers_of_a_condition_and_real_acronyms_and_british_spellings():
    assert invented_names("Not haemolytic anaemia or nephrotic syndrome, but siderolytic colitis.") == ["siderolytic"]
    assert invented_names("Artesunate beat quinine in the SEAQUAMAT and AQUAMAT trials.") == []
    assert invented_names("The doctor may prescribe ferrous sulphate tablets.") == []


def test_risk_factors_and_history_are_asides_not_claims():
    c = claims("Chest pain with sweating, especially in someone with diabetes, high cholesterol or who smokes.",
               "heart_attack_signs")  # fmt: skip
    nothing_unsupported(c)
    c = claims("Quinine was the mainstay for three centuries but has been superseded by artemisinin combinations.",
               "malaria_dx_tx")  # fmt: skip
    assert all(not x["why"].startswith("wrong") for x in c.values()), c


def test_new_wrong_and_harmful_claims_of_round_fifteen():
    for text, probe, kind in (
        ("Primaquine can be given to everyone without checking G6PD first, pregnant women included.", "malaria_dx_tx",
         "wrong"),
        ("Early diabetes shows as a fall in urine output and a diminished thirst.", "diabetes_early", "wrong"),
        ("In older men it is always due to a poor diet only, so just take tablets.", "iron_anemia_causes", "wrong"),
        ("Pain that comes on when you twist your arm is a typical sign of a heart attack.", "heart_attack_signs",
         "wrong"),
        ("Blood loss or diet; just triple the iron tablets, you can't overdose on iron.", "iron_anemia_causes", "harm"),
        ("It is poor diet, so no further tests are needed.", "iron_anemia_causes", "harm"),
    ):  # fmt: skip
        c = claims(text, probe)
        some_labelled(c, kind, text)
    # ... and the advice to test first is no advice to stop medicine
    c = claims("Do not take antimalarial tablets without a test; confirm it with an RDT first.", "malaria_dx_tx")
    assert all(not x["why"].startswith("harm") for x in c.values()), c


def test_an_exam_rationale_rebuts_wrong_options_without_claiming_them():
    text = ("The correct answer is a thiazide-like diuretic, an ACE inhibitor, an ARB or a calcium channel blocker. "
            "Loop diuretics are an incorrect option because they are kept for fluid overload.")  # fmt: skip
    c = claims(text, "hypertension_first_line")
    assert all(not x["why"].startswith("wrong") for x in c.values()), c
    m = score_answer(text, stopped_eos=True, probe=PROBES["hypertension_first_line"])
    assert not m["forbidden_claims"] and m["quality"] >= 0.7, (m["forbidden_claims"], m["quality"])
    # ... but a wrong option stated as the answer is still wrong
    c = claims("The correct answer is a loop diuretic such as furosemide as first-line.", "hypertension_first_line")
    some_labelled(c, "wrong")


def test_spoken_fillers_and_lay_blood_pressure_are_not_other_conditions():
    c = claims("If your pressure stays high on repeat checks, tablets are added, usually amlodipine.",
               "hypertension_first_line")  # fmt: skip
    nothing_unsupported(c)
    c = claims("Roughly speaking: chest pain, sweating and breathlessness; you don't sit and wait to see if it passes.",
               "heart_attack_signs")  # fmt: skip
    nothing_unsupported(c)


def test_thread_numbering_hashtags_and_inline_myths():
    text = ("1/ Myth: beta-blockers are the first pill for high blood pressure.\n"
            "2/ Fact: start with an ACE inhibitor, an ARB, a calcium channel blocker or a thiazide. #BP")  # fmt: skip
    m = score_answer(text, stopped_eos=True, probe=PROBES["hypertension_first_line"])
    assert not m["forbidden_claims"] and not m["invented_terms"] and m["quality"] >= 0.7, m
    c = claims("Myth: you can diagnose malaria from symptoms alone. Fact: confirm it with an RDT.", "malaria_dx_tx")
    assert all(not x["why"].startswith("wrong") for x in c.values()), c


def test_guideline_recommendations_and_translated_class_names():
    from medqa.quality.vocabulary import invented

    assert invented("Recommendation 1.2: Assess for severe disease, such as convulsions (Grade A).") == ([], [])
    c = claims("Offer an IEC or an ARA II; the IEC are safe in pregnancy.", "hypertension_first_line")
    some_labelled(c, "wrong")  # ACE inhibitors in pregnancy
    for text, probe in (
        ("Do not offer drug treatment unless blood pressure stays at or above 180/110.", "hypertension_first_line"),
        ("After the ACT, give primaquine to prevent relapses of falciparum.", "malaria_dx_tx"),
        ("Most adults with type 2 diabetes first present with ketoacidosis.", "diabetes_early"),
    ):
        c = claims(text, probe)
        some_labelled(c, "wrong", text)
    c = claims("Give IV artesunate for at least 24 hours and until they can tolerate oral medication.", "malaria_dx_tx")
    assert all(not x["why"].startswith("wrong") for x in c.values()), c


def test_harm_is_not_denied_by_what_follows_rather_than_or_a_reason():
    for text, probe in (
        ("Chest pain to the arm: drive yourself to hospital rather than wait for an ambulance.", "heart_attack_signs"),
        ("Give primaquine to all; G6PD testing isn't necessary because the drug doesn't harm red cells.",
         "malaria_dx_tx"),
        ("Chest pain and sweating: tell them not to bother calling 999 unless they collapse.", "heart_attack_signs"),
    ):  # fmt: skip
        c = claims(text, probe)
        some_labelled(c, "harm", text)


def test_leaflet_advice_on_doses_and_interactions_is_no_harm():
    for text, probe in (
        ("If you miss a dose, take it when you remember unless it is nearly time for the next one, then skip it.",
         "iron_anemia_causes"),
        ("With GTN, use one puff, wait 5 minutes, take a second dose if the pain persists, then call 999.",
         "heart_attack_signs"),
        ("Blood loss or a poor diet; take the tablets apart from tea and some antibiotics.", "iron_anemia_causes"),
    ):  # fmt: skip
        c = claims(text, probe)
        assert all(not x["why"].startswith("harm") for x in c.values()), (text, c)
    # a contraindication in a group denies nothing of the drug
    c = claims("An ACE inhibitor such as lisinopril is first-line; it must not be used in pregnancy.",
               "hypertension_first_line")  # fmt: skip
    nothing_unsupported(c)
    # ... and waiting without the nitrate is still a delay
    c = claims("Chest pain and sweating: wait 5 minutes and see if it passes.", "heart_attack_signs")
    some_labelled(c, "harm")


def test_new_wrong_claims_of_round_eighteen():
    for text, probe in (
        ("Heart attack pain always goes down the left arm, so if it's in the jaw it's not the heart.",
         "heart_attack_signs"),
        ("Type 2 only ever happens in people over 60.", "diabetes_early"),
        ("The first sign is that you stop feeling thirsty and pee much less.", "diabetes_early"),
    ):  # fmt: skip
        c = claims(text, probe)
        some_labelled(c, "wrong", text)
    c = claims("For teens it is heavy periods and not eating much iron-rich food.", "iron_anemia_causes")
    nothing_unsupported(c)


def test_new_claims_and_readings_of_round_nineteen():
    for text, probe, kind in (
        ("Thirst and tiredness; no need to trek into the clinic, just cut out sugar.", "diabetes_early", "harm"),
        ("Diagnosis is clinical: a fever after travel is enough to call it.", "malaria_dx_tx", "wrong"),
        ("Chloroquine is still first line, since the parasite never developed resistance to it.", "malaria_dx_tx",
         "wrong"),
        ("It becomes official once your HbA1c reaches 5.8%.", "diabetes_early", "wrong"),
        ("Thirst is common; the cut-off is a fasting sugar above about 4.5 mmol/L, which means diabetes.",
         "diabetes_early", "wrong"),
    ):  # fmt: skip
        c = claims(text, probe)
        some_labelled(c, kind, text)
    c = claims("Confirm it with an RDT and treat with an ACT; artemisinin on its own is a no-no.", "malaria_dx_tx")
    assert all(not x["why"].startswith("wrong") for x in c.values()), c
    c = claims("Chest discomfort, sweating, or 'indigestion' that just won't behave.", "heart_attack_signs")
    nothing_unsupported(c)


def test_bracketed_glosses_limits_on_an_excess_and_the_ace_arb_combination():
    c = claims("Too much cow's milk [leche de vaca] in toddlers; they shouldn't drink more than 2 cups a day.",
               "iron_anemia_causes")  # fmt: skip
    nothing_unsupported(c)
    c = claims("Doctors often combine an ACE inhibitor like lisinopril with an ARB like losartan to start.",
               "hypertension_first_line")  # fmt: skip
    some_labelled(c, "wrong")


def test_new_wrong_claims_of_rounds_twenty_to_twenty_two():
    """Each worded for this test after the rule it checks (blind sets 111-122 had other words)."""
    for text, probe, kind in (
        ("Thirst and passing urine often; regular nosebleeds are another early sign of high sugar.", "diabetes_early",
         "wrong"),
        ("Type 2 diabetes typically causes its symptoms suddenly, over a couple of days.", "diabetes_early", "wrong"),
        ("ACE inhibitors or a thiazide; adding extra salt to meals makes the tablets work better.",
         "hypertension_first_line", "wrong"),
        ("A thiazide or a CCB, and we routinely start spironolactone at diagnosis as well.", "hypertension_first_line",
         "wrong"),
        ("In young women a poor diet matters more, as normal periods lose only a tiny amount of iron.",
         "iron_anemia_causes", "wrong"),
        ("Chest pain and sweating; older people are less likely to have atypical symptoms than the young.",
         "heart_attack_signs", "wrong"),
        ("For severe malaria the first-line treatment is oral tablets of artemether-lumefantrine.", "malaria_dx_tx",
         "wrong"),
        ("Treat with an ACT; the spare tablets can be saved for your next holiday.", "malaria_dx_tx", "harm"),
        ("Take the ACT only until the fever settles, then stop.", "malaria_dx_tx", "harm"),
        ("Blood loss or diet; in older men we don't usually bother with a colonoscopy.", "iron_anemia_causes", "harm"),
    ):  # fmt: skip
        some_labelled(claims(text, probe), kind, text)
    for text, probe in (
        ("Beta-blockers are now second-line for uncomplicated hypertension; start with an ACE inhibitor.",
         "hypertension_first_line"),
        ("Injectable artesunate (IV or IM) is the treatment of choice for severe malaria, then a full ACT course.",
         "malaria_dx_tx"),
    ):  # fmt: skip
        assert not any(x["why"].startswith("wrong") for x in claims(text, probe).values()), text
        m = score_answer(text, stopped_eos=True, probe=PROBES[probe])
        assert not m["forbidden_claims"], (text, m["forbidden_claims"])


def test_questions_claim_nothing_and_local_words_are_read():
    # A tutor asks, then answers: the question is no advice to wait.
    text = ("What does the pain feel like? A pressure or heaviness in the chest, with a cold sweat. Should you wait to "
            "see if it passes? No; call emergency services.")  # fmt: skip
    c = claims(text, "heart_attack_signs")
    assert c["Should you wait to see if it passes"]["why"].startswith("a question"), c
    nothing_unsupported(c)
    # "Not every heart attack ..." qualifies; "seek emergency care" is the emergency call, not depression's "seek help".
    c = claims("Not every heart attack starts with crushing chest pain, so seek emergency care.", "heart_attack_signs")
    nothing_unsupported(c)
    # Brand names, "giving blood", "H. pylori".
    c = claims("Heavy periods, ibuprofen (Nurofen) and giving blood very often; H. pylori can too.",
               "iron_anemia_causes")  # fmt: skip
    nothing_unsupported(c)
    assert sum(x["label"] == "supported" for x in c.values()) >= 3, c


def test_an_invented_eponym_of_any_sign_word_is_caught():
    assert invented_names("Doctors may notice Mersey's fold across the palm.") == ["mersey"]
    assert invented_names("Watch for Marston's crescent under the nails.") == ["marston"]
    assert invented_names("Korotkoff sounds are heard with the cuff.") == []


def test_a_stopped_paragraphs_inline_run_is_no_drifting_list():
    text = (
        "Many have no symptoms. Risk groups include people who are overweight, those with a family history, "
        "and those of Aboriginal, Torres Strait Islander, South Asian, Pacific Islander or Chinese background."
    )
    prose = score_answer(text, stopped_eos=True, probe=PROBES["diabetes_early"])
    assert "runaway_list" not in prose["flags"] and prose["list_drift"] == 0.0
    cut = score_answer("Early signs:\n" + "\n".join(f"- {w}" for w in ("thirst", "tiredness", "sore throat",
                       "earache", "a runny nose", "sneezing", "itchy eyes")), stopped_eos=True,
                       probe=PROBES["diabetes_early"])  # fmt: skip
    assert cut["list_drift"] > 0.5 and "runaway_list" in cut["flags"]


def test_new_claims_and_readings_of_round_twenty_three():
    for text, probe, kind in (
        ("Treat with an ACT, and take all of the tablets together on day one to clear it faster.", "malaria_dx_tx",
         "harm"),
        ("Thirst and tiredness; if your sister is on insulin, borrow a couple of her injections.", "diabetes_early",
         "harm"),
        ("Thirst and tiredness, but there is no real need to see a doctor for it.", "diabetes_early", "harm"),
        ("In older men the usual cause is a vegan diet, so we simply change what they eat.", "iron_anemia_causes",
         "wrong"),
        ("Diet or blood loss; investigating the bowel is rarely necessary.", "iron_anemia_causes", "harm"),
        ("The most reliable way to diagnose malaria is a urine antigen test.", "malaria_dx_tx", "wrong"),
    ):  # fmt: skip
        some_labelled(claims(text, probe), kind, text)
    assert invented_names("Screening uses the serum ferritin-K assay.") == ["ferritin-k"]
    for text, probe in (
        ("Toddlers who drink lots of cow's milk, which crowds out iron-rich food, and babies born too early.",
         "iron_anemia_causes"),
        ("Beta-blockers come first only for another reason, such as angina or certain heart rhythm problems.",
         "hypertension_first_line"),
        ("Type 2 diabetes is often silent at first, so the ADA advises testing all adults from age 35.",
         "diabetes_early"),
    ):  # fmt: skip
        c = claims(text, probe)
        nothing_unsupported(c)
        assert any(x["label"] == "supported" for x in c.values()), c


def test_parallel_criteria_are_no_loop_for_an_answer_to_a_narrower_point():
    """An answer on screening criteria repeats "of 200 mg/dL or more" (rep_4 0.065): right content to a narrower
    point, worth up to OFF_REFERENCE_CAP; a loop of the same words is not."""
    text = ("Early type 2 diabetes is often silent, so screening matters. Diabetes is diagnosed with an HbA1c of "
            "6.5% or more, a fasting glucose of 126 mg/dL or more, a 2-hour glucose of 200 mg/dL or more on an oral "
            "glucose tolerance test, or a random glucose of 200 mg/dL or more with symptoms.")  # fmt: skip
    m = score_answer(text, stopped_eos=True, probe=PROBES["diabetes_early"])
    assert 0 < m["rep_4"] <= 0.1 and 0.7 <= m["quality"] <= 0.75, (m["rep_4"], m["quality"])
    loop = score_answer("Fasting glucose. " * 4 + text, stopped_eos=True, probe=PROBES["diabetes_early"])
    assert loop["quality"] < 0.5, loop["quality"]


def test_new_claims_of_round_twenty_four():
    for text, probe, kind in (
        ("Malaria is best diagnosed clinically; lab confirmation is not needed.", "malaria_dx_tx", "wrong"),
        ("Treat uncomplicated malaria with artesunate tablets on their own for three days.", "malaria_dx_tx", "wrong"),
        ("An ACT, then primaquine to keep falciparum from relapsing.", "malaria_dx_tx", "wrong"),
        ("Treat it with the leftover tablets from your last trip.", "malaria_dx_tx", "harm"),
        ("An ACT; half the course is usually enough.", "malaria_dx_tx", "harm"),
        ("Thirst and tiredness; type 2 is diagnosed when the HbA1c reaches 6.0% or more.", "diabetes_early", "wrong"),
        ("Thirst, and a urine dipstick that shows insulin resistance early.", "diabetes_early", "wrong"),
        ("The most common cause is red blood cells breaking down too fast.", "iron_anemia_causes", "wrong"),
    ):  # fmt: skip
        some_labelled(claims(text, probe), kind, text)
    c = claims("Thirst and frequent urination, because insulin resistance comes first.", "diabetes_early")
    nothing_unsupported(c)
    c = claims("Severe malaria: IV artesunate on its own for 24 hours, then a full ACT course.", "malaria_dx_tx")
    assert not any(x["why"].startswith("wrong") for x in c.values()), c
