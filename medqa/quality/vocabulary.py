"""Is a word a real word? The vocabulary behind the invented-name check for names of any shape.

`invented_terms` (medqa.quality.lexicon) catches confabulated names that imitate a drug stem ("artuzofloxacin").
Invented names need not do that ("glucotrexane", "nebivantan", "thrombevase"). A word counts as invented here
when it is long (>= MIN_NAME letters), not English, not a drug or synonym of the offline drug dictionary, not
in the shipped corpus, the reference files or the caller's known words, not built from medical word parts
(hyper-, -aemia, -uria, -itis, -osis, ...: real clinical terms are, invented brand-like names are not), not a
compound of two English words ("monotherapy"), and not capitalised inside a sentence (an eponym: "Hashimoto").

English: the word list of `pyspellchecker` (MIT, pure python, ~160k words from OpenSubtitles/Wiktionary, read
offline from its wheel), tried with British spellings mapped to American ones ("haematuria" -> "hematuria").
Pure text: no torch, no model.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from medqa.core.paths import ASSETS, CONF_DIR
from medqa.quality.lexicon import NAME_RE, as_set, invented_terms, known_drug, shipped_words, words

MIN_NAME = 7
# Greek/Latin word parts of real clinical terms (an invented drug name is built from none of them).
MEDICAL_PREFIXES = (
    "hyper", "hypo", "micro", "macro", "normo", "tachy", "brady", "dys", "poly", "haem", "hem", "neuro", "cardio",
    "gastro", "entero", "nephro", "hepat", "derm", "osteo", "arthr", "myo", "angio", "thrombo", "immuno", "pneumo",
    "broncho", "endo", "peri", "intra", "trans", "sub", "supra", "anti", "non", "pre", "post", "over", "under",
    "self", "multi", "inter", "uro", "cysto", "pyelo", "glyc", "lipo", "retino", "mono", "co", "re", "un", "bi", "tri",
)  # fmt: skip
CLINICAL_PART_SUFFIXES = (
    "aemia", "emia", "aemic", "emic", "uria", "itis", "osis", "otic", "ectomy", "ostomy", "otomy", "plasty",
    "scopy", "scope", "graphy", "gram", "lysis", "lytic", "algia", "pathy", "pathic", "penia", "plegia", "rrhoea",
    "rrhea", "rrhagia", "genic", "ology", "ologist", "ism", "cytic", "cyte", "trophy", "oma", "ectasia", "iasis",
    "aemia", "ised", "ized", "isation",
)  # fmt: skip
# ... and endings any English word may have: together they make a word built of parts real, not a medical name.
MEDICAL_SUFFIXES = CLINICAL_PART_SUFFIXES + ("ization", "ically", "ness", "less", "ment", "able", "ible")
# Endings that only clinical terms have (a subset of MEDICAL_SUFFIXES).
CLINICAL_SUFFIXES = ("aemia", "emia", "uria", "itis", "osis", "ectomy", "ostomy", "otomy", "scopy", "lysis", "algia",
                     "pathy", "penia", "plegia", "rrhoea", "rrhea", "rrhagia", "iasis")  # fmt: skip
_BRITISH = ((r"ae", "e"), (r"oe", "e"), (r"isation", "ization"), (r"ise", "ize"), (r"our", "or"), (r"tre$", "ter"),
            (r"ulph", "ulf"))  # fmt: skip


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """The pyspellchecker English word list (lower case)."""
    try:
        import spellchecker  # noqa: F401  (fails here when missing)
    except ModuleNotFoundError as e:  # one clear line, not a traceback from deep inside scoring
        raise ModuleNotFoundError("pyspellchecker is not installed (the English word list): "
                                  "pip install pyspellchecker==0.9.1") from e  # fmt: skip
    return frozenset(_checker().word_frequency.dictionary)


@lru_cache(maxsize=1)
def asset_words() -> frozenset[str]:
    """Every word of the reference files (references.yaml, fact_lexicon.yaml) and the shipped probe sets."""
    texts = [(ASSETS / n).read_text(encoding="utf-8") for n in ("references.yaml", "fact_lexicon.yaml")]
    texts += [p.read_text(encoding="utf-8") for p in sorted((CONF_DIR / "probes").glob("*.yaml"))]
    return frozenset(w for t in texts for w in words(t))


@lru_cache(maxsize=1)
def _known() -> frozenset[str]:
    """English, the shipped corpus and the reference files in one set (built once: the union of ~160k words
    cost ~10 ms, and it was rebuilt for every word checked)."""
    return english_words() | shipped_words() | asset_words()


def _variants(w: str) -> set[str]:
    out = {w}
    for pattern, repl in _BRITISH:
        out |= {re.sub(pattern, repl, v) for v in out}
    for suffix in ("s", "es", "ed", "ing", "ly", "al"):
        out |= {v[: -len(suffix)] for v in list(out) if v.endswith(suffix) and len(v) - len(suffix) >= 4}
    return out


def listed_word(word: str, known_words: Iterable[str] = ()) -> bool:
    """In a word list as it stands: English, a known drug, the shipped corpus, the reference files, `known_words`."""
    w = word.lower()
    return bool(_variants(w) & _known()) or w in as_set(known_words) or known_drug(w)


def real_word(word: str, known_words: Iterable[str] = ()) -> bool:
    """English, a known drug, a word of the shipped corpus or reference files or `known_words`, or a clinical
    term built from medical word parts."""
    if listed_word(word, known_words):
        return True
    w, known = word.lower(), _known()
    if w.endswith(MEDICAL_SUFFIXES) or any(v in known for v in _strip_prefix(w)):
        return True
    # A compound of two English words ("monotherapy", "lifelong"): both parts of >= 4 letters.
    eng = english_words()
    return any(w[:i] in eng and _variants(w[i:]) & eng for i in range(4, len(w) - 3))


def _strip_prefix(w: str) -> set[str]:
    out = set()
    for p in MEDICAL_PREFIXES:
        if w.startswith(p) and len(w) - len(p) >= 4:
            out |= _variants(w[len(p) :])
    return out


# Endings of substance names (drugs, enzymes, proteins, brands): an unknown word with one of them names a thing
# ("ferrolysin", "glycotransferrin"); an unknown word without one is more often a real word the list lacks
# ("comorbidities", "vulvovaginal", "pagophagia") and is not counted.
SUBSTANCE_ENDINGS = (
    "in", "ine", "ase", "ide", "ate", "one", "ol", "an", "ax", "ex", "ix", "yl", "il", "ene", "ane", "ium", "ox",
    "or", "ar", "el", "yx", "ys",
)  # fmt: skip
# Words that announce a name: "a test called X", "serum X", "X level", "the X sign".
NAMING_BEFORE = re.compile(
    r"(?i)\b(?:called|named|known as|termed|brand|branded|marketed as|serum|plasma|blood|urinary|urine|new drug|"
    r"new test|tablets? of|the drug|the test|the marker|add|adds|added|give|gives|given|prescribe|prescribed|"
    r"take|takes|taking|try|tried|dose of|course of|treated with|treat with|started on|start on)\W{1,3}$"
)
NAMING_AFTER = re.compile(
    r"(?i)^\W{0,3}(?:an? (?:once-|twice-)?(?:daily )?)?"  # ", a once-daily tablet"
    r"(?:tests?|levels?|assays?|index|scores?|scans?|markers?|signs?|reflex(?:es)?|triads?|"
    r"tablets?|capsules?|injections?|infusions?|pills?|sprays?|inhalers?|patch(?:es)?|drops|creams?|gels?|lozenges?|"
    r"strips?|kits?|syndrome|protocol|criteria)\b"
)
# A condition's name after the word ("ferrolytic gastritis", "X enteropathy", "X disease"): a word made of medical
# parts that no list holds is a made-up qualifier there, as it is before "syndrome".
CONDITION_AFTER = re.compile(
    r"(?i)^\s+(?:[a-z]+(?:itis|pathy|osis|a?emia)|disease|disorder|deficiency|syndrome|an(?:a)?emia)\b"
)
# Eponyms (Name's sign/reflex/triad ...): the name must be a known one.
EPONYM_RE = re.compile(
    # not a determiner, nor a contraction ("It's a sign of insulin resistance" names no Dr It)
    r"\b(?!(?:The|A|An|This|That|Our|Your|Its|Their|Any|Each|No)\s|(?:It|That|There|Here|What|He|She|Let|Who|Where)"
    r"(?:'s|’s)\s)([A-Z][a-z]+(?:[- ][A-Z][a-z]+)?)(?:'s|’s|s')?"
    r"(?:\s+[a-z]+(?:-[a-z]+)?){0,2}\s+(sign|reflex|triad|tetrad|test|"
    r"manoeuvre|maneuver|phenomenon|criteria|crease|node|nodes|law|rule|score|index|syndrome|disease|enteropathy|point|pattern|"
    r"breathing|respiration|ratio|spots?|lines?|murmur|classification|stages?|scale|flush|rash|ring|tap|macules?|papules?|"
    r"patch|plaques?|nodules?|lesions?|stain|staining|bodies|inclusions?|dots|clefts|rods|granules|assay|folds?|creases|"
    r"crescents?|sounds|stippling|bands?|waves?|notch|streaks?|marks?|halo|hump)\b"
)
KNOWN_EPONYMS = frozenset(
    """heinz howell jolly schuffner schüffner maurer dohle döhle cabot pappenheimer ziemann james romanowsky
    addison adie allen apgar argyll austin babinski baker barrett battle beck bell bence berger blumberg
    bouchard brudzinski brugada buerger burkitt charcot chvostek conn courvoisier crohn cullen cushing
    dressler dupuytren duke ewart fallot finkelstein framingham frank friedreich gilbert glasgow gleason
    gottron graham graves grey turner guillain hamman hashimoto heberden hodgkin homans horner huntington
    janeway kaposi kawasaki kehr kernig killip korsakoff kussmaul lachman levine lhermitte light lown
    marfan mcburney mcdonald meniere murphy musset nikolsky osler paget parkinson phalen plummer
    vinson paterson kelly quincke raynaud reynolds rinne romberg roth rovsing schilling sjogren stokes
    adams cheyne tinel trendelenburg trousseau turner virchow weber wells wernicke whipple wilson wolff
    parkinson white zollinger ellison jones duckett kerley mallory weiss boerhaave reiter still hering
    ottawa centor curb geneva grace timi heart wells nyha gold child pugh meld apache ranson glasgow
    de musset samter saint beck levine's hollenhorst janeway koplik kayser fleischer bitot auer reed
    sternberg giemsa wright leishman field shilling willebrand cameron hashimoto crigler najjar dubin waterhouse
    friderichsen bernard soulier glanzmann fanconi diamond blackfan barlow hutchinson peutz jeghers osler rendu
    weber lynch gardner zenker meckel hirschsprung korotkoff prinzmetal wellens kimmelstiel somogyi perls heyde
    de winter sgarbossa osborn mobitz wenckebach lichtstein""".split()
)  # fmt: skip
# Named scores, indices and tests ("Harrington Renin Index", "Okafor-Lindqvist Parasite Burden Score"): a surname
# (or two, hyphenated), up to three capitalised words, then the kind of instrument; the surname must be a known one.
SCORE_RE = re.compile(
    r"\b([A-Z][a-z]+(?:-[A-Z][a-z]+)?)(?:'s|’s)?((?:\s+[A-Z][a-z]+(?:-[A-Z][a-z]+)?){0,3})\s+(Score|Index|Scale|Criteria|"
    r"Classification|Rule|Protocol|Test|Sign|Assay|Method|System|Nomogram|Equation|Formula|Ratio|Staging)\b"
)
KNOWN_NAMES = frozenset(
    """mentzer leicester cambridge oxford edinburgh manchester finnish canadian american british european qrisk
    reynolds framingham ottawa geneva wells centor duke rome ranson bishop epworth snellen ishihara mallampati
    glasgow apgar gleason killip grace timi wilson schilling coombs widal giemsa field leishman kleihauer
    binax""".split()
)  # fmt: skip
# Instruments named by capitalised words with an acronym ("the Glycaemic Early Warning Score (GEWS)") or by a
# hyphenated capitalised name ("the Fe-BLEED score", "a Troponin-Z strip"): real ones are listed.
ACRONYM_INSTRUMENT_RE = re.compile(
    r"\b(?:[A-Za-z][a-z]+\s+){1,5}(?i:score|index|scale|test|tool|questionnaire|rule|criteria|check|assessment|quotient|ratio|"
    r"panel|profile|assay|marker|count)\s*"
    r"\(([A-Z][A-Za-z0-9-]{1,9})\)"
)  # "the Glycaemic Early Warning Score (GEWS)", "a serum ferroportin index (SFI)"
ACRONYM_BEFORE_TEST_RE = re.compile(
    r"\b(?:[A-Za-z][a-z]+[- ]){1,4}[A-Za-z]*\s*\(([A-Z][A-Za-z0-9-]{1,9})\)\s+(?:blood |urine |serum |stool )?"
    r"(?i:test|assay|marker|scan|score|index|strip|panel)\b"
)  # "the myocardin kinase-B (MKB) blood test"
HYPHEN_INSTRUMENT_RE = re.compile(
    r"\b([A-Z][A-Za-z]*-[A-Z][A-Za-z]*)\s+(?:[A-Z]{2,6}\s+)?"  # "the Plasmo-Quik PCR dipstick"
    r"(?i:score|index|scale|test|strip|dipstick|assay|tool|check|kit|scan|criteria|device|cassette)\b"
)
# A word with a code letter or number before the instrument ("the urinary glucoprotein-K test"): real ones are listed.
CODED_INSTRUMENT_RE = re.compile(
    r"\b([a-z]{4,}-[A-Z0-9]{1,3})\s+(?i:test|assay|panel|screen|strip|dipstick|kit|scan|score|index)\b"
)
KNOWN_INSTRUMENTS = frozenset(
    """news news2 mews grace timi heart findrisc qrisk qrisk2 qrisk3 curb curb-65 crb-65 abcd2 nihss gcs fast befast
    rosier phq phq-9 gad-7 audit ipss mmse moca dash bmi ogtt rdt ecg ekg hba1c fpg ada drs adrs ukpds score score2
    has-bled cha2ds2-vasc nt-probnp troponin-i troponin-t troponin-c anti-ttg igA-ttg tt-g qsofa sofa sirs wells
    perc edacs hear hscrp crp fit fobt qfit pfhrp2 pldh hrp2 g6pd lamp pcr abpm hbpm who-5 dass abi abpi fbc cbc rpg
    tsat tibc mcv esr ldh bnp egfr acr uacr psa tsh ft4 gtt idrs mna must bmi-z dlqi nyha ccs sbp dbp inr pcv rdw
    hct mch mchc alt ast ggt ck ck-mb lft lfts u&e ucr pcr acr fbg rbg rbs fbs anti-tpo vitamin-d vitamin-b12 factor-v
    factor-viii""".lower().split()
)  # fmt: skip
# Organisations ("the Global Hypertension Consensus Board"): capitalised words ending in a body's kind. A guideline
# body that is not one of the real ones below is an invented authority.
ORG_RE = re.compile(
    r"\b((?:[A-Z][a-z]+|[A-Z]{2,})(?:,?\s+(?:[A-Z][a-z]+|of|for|on|and|the|in))*\s+(?:Council|Board|Society|"
    r"Association|Institute|Federation|Committee|College|Academy|Consortium|Alliance|Organi[sz]ation|Agency|Foundation|"
    r"Network|Collaborative|Collaboration|Task Force|Panel|Coalition|Commission|Consensus|Registry|Working Group|"
    r"Partnership)(?:\s+(?:of|for|on|in)(?:\s+(?:the|and|[A-Z][a-z]+))+)?)"
)
KNOWN_BODIES = frozenset(
    line.strip().lower()
    for line in """American Heart Association
    American College of Cardiology
    American Diabetes Association
    American Association of Clinical Endocrinology
    American Association of Clinical Endocrinologists
    American College of Physicians
    American Academy of Family Physicians
    American Academy of Pediatrics
    American College of Obstetricians and Gynecologists
    American Society of Hematology
    American Society of Hypertension
    American Society of Tropical Medicine and Hygiene
    American Gastroenterological Association
    American Red Cross
    American Stroke Association
    European Society of Cardiology
    European Society of Hypertension
    European Association for the Study of Diabetes
    European Resuscitation Council
    European Medicines Agency
    European Society for Clinical Nutrition and Metabolism
    International Society of Hypertension
    International Diabetes Federation
    International Society on Thrombosis and Haemostasis
    International Federation of Clinical Chemistry
    World Health Organization
    World Health Organisation
    World Heart Federation
    World Gastroenterology Organisation
    World Stroke Organization
    Pan American Health Organization
    National Institute for Health and Care Excellence
    National Institute for Health and Clinical Excellence
    National Institute of Diabetes and Digestive and Kidney Diseases
    National Institutes of Health
    National Heart Foundation
    National Heart, Lung, and Blood Institute
    National Kidney Foundation
    National Health Service
    National Malaria Control Programme
    British Heart Foundation
    British Hypertension Society
    British and Irish Hypertension Society
    British Society for Haematology
    British Society of Gastroenterology
    British Cardiovascular Society
    British Red Cross
    British Infection Association
    British Dietetic Association
    Royal College of Physicians
    Royal College of General Practitioners
    Royal College of Obstetricians and Gynaecologists
    Royal College of Paediatrics and Child Health
    Resuscitation Council
    Heart and Stroke Foundation
    Heart Foundation
    Canadian Cardiovascular Society
    Infectious Diseases Society of America
    Endocrine Society
    Joint National Committee
    Malaria Consortium
    Advisory Committee on Malaria Prevention
    Scottish Intercollegiate Guidelines Network
    Food and Drug Administration
    Health Security Agency
    Medicines and Healthcare products Regulatory Agency
    Preventive Services Task Force
    Cochrane Collaboration
    Global Fund
    Kidney Disease Improving Global Outcomes""".splitlines()
)
_BODY_FILLER = frozenset("the of for and in on".split())


def _body_key(name: str) -> tuple[str, ...]:
    return tuple(w for w in re.findall(r"[a-z]+", name.lower()) if w not in _BODY_FILLER)


@lru_cache(maxsize=1)
def _known_bodies() -> frozenset[tuple[str, ...]]:
    return frozenset(_body_key(b) for b in KNOWN_BODIES)


def _medical_word(word: str, extra: set[str] | frozenset[str]) -> bool:
    """A word the reference files, the shipped corpus or a clinical word part vouch for ("serum", "faecal",
    "immunochemical"), as opposed to a surname the English list happens to hold ("Harrington")."""
    forms = _variants(word)  # membership set by set: a union of the word lists per word would rebuild them each time
    if forms & asset_words() or forms & shipped_words() or forms & extra or clinical_term(word):
        return True
    return word.startswith(MEDICAL_PREFIXES) and len(word) >= 8 or word.endswith(CLINICAL_PART_SUFFIXES)


def invented_bodies(text: str) -> list[str]:
    """Organisation names of `text` that no real guideline body has (lower case). A known body's name inside a
    longer match ("the American Heart Association Council", "the National Heart Foundation of Australia") counts as
    known, and so does one after a country prefix ("US", "UK")."""
    out = []
    for match in ORG_RE.finditer(text):
        key = _body_key(match.group(1))
        while key and key[0] in {"uk", "us", "usa", "joint"}:
            key = key[1:]
        known = _known_bodies()
        if any(key[i : i + len(k)] == k for k in known for i in range(len(key) - len(k) + 1)):
            continue
        out.append(" ".join(key))
    return out


# Codes: letters then digits ("IRI-3", "GlycoTrace-7"); real ones are listed (upper case, no hyphen).
CODE_RE = re.compile(r"\b([A-Za-z]{2,}[A-Za-z]*)-?([A-Za-z]?\d{1,2}[A-Za-z]?)\b")
KNOWN_CODE_PREFIXES = frozenset(
    """hba hb a hrp g pd ns sglt glp dpp cox h b p y il cd her t d dm ace cyp nt probnp bnp type grade stage step
    age class day days week weeks ng cg esh acc aha jnc icd covid omega vitamin vit phase level ckd nyha gold timi
    qrisk score chads cha ds vasc hasbled fev ldl hdl pm ml mg mcg iu mmol mmhg kg bmi ec tb hiv hpv hsv ebv cmv
    rsv sars mers apo lp tnf ifn ige igg igm iga ct mri pet ecg ekg stemi nstemi nste st mi tsh ft t fsh lh crp
    esr alt ast ggt alp egfr uacr acr fit fobt fib ldh pldh pfhrp pvldh lamp pcr rdt who nice ada easd ish ers
    esc escardio nhs cdc fda ema us uk eu kdigo kdoqi dsm icd oxford cyp pfk q qd bd tds od prn im iv sc
    po pr sl mdi dpi copd ards hfref hfpef ras raas rasi arni mra ccb arb acei bp sbp dbp abpm hbpm vte pe dvt
    cvd ascvd chd cad pad tia cva pci cabg nsaid nsaids ppi ppis iron fe vit mcv mch mchc rdw wbc rbc plt inr
    aptt pt rr hr spo sao pao fio gcs avpu nd rd th mid late early""".split()
)  # fmt: skip


def _naming_context(text: str, start: int, end: int) -> bool:
    return bool(NAMING_BEFORE.search(text[max(0, start - 24) : start]) or NAMING_AFTER.search(text[end : end + 24]))


def invented_names(text: str, known_words: Iterable[str] = ()) -> list[str]:
    """Long words of `text` that are no real word (see the module docstring), lower case, each once, in order."""
    extra = as_set(known_words)
    seen, out = set(), []

    def add(name: str) -> None:
        if name not in seen:
            seen.add(name)
            out.append(name)

    for match in EPONYM_RE.finditer(text):
        name = match.group(1)
        parts = [p.lower() for p in re.split(r"[- ]", name)]
        possessive = bool(re.search(r"('s|’s|s')\s", match.group(0)))
        if any(p in KNOWN_EPONYMS for p in parts):
            continue
        before = text[: match.start(1)].rstrip()
        initial = not before or before[-1] in ".!?:;\n*•-" or bool(re.search(r"\d[./)]$", before))
        if initial and not possessive and len(parts) == 1:
            continue  # "Recommendation 1.2: Assess for severe disease": a sentence's first word, not a surname
        if not possessive and any(real_word(p, extra) and common_word(p) for p in parts):
            continue  # "Chest pain", "Heart rate": capitalised everyday words; "Marsh's sign" is still a name
        # A surname the English list happens to hold ("Brennan", "Hartmann") is still a name; a word it holds that is
        # everyday or medical ("Coeliac disease", "Chest pain") is not
        ordinary = all(listed_word(p, extra) and (common_word(p) or _medical_word(p, extra)) for p in parts)
        if not possessive and ordinary:
            continue  # "Coeliac disease", "Graves disease": a word the lists know, not a made-up name
        possessive_first = match.group(0).split()[0].endswith(("'s", "’s"))
        if ordinary and all(p in english_words() for p in parts) and not possessive_first:
            continue  # "Chest pain", "Blood tests": a capitalised ordinary phrase, not an eponym
        add(name.lower())
    for match in SCORE_RE.finditer(text):
        parts = [p.lower() for p in re.split(r"[- ]", match.group(1))]
        # "Body Mass Index", "Rapid Diagnostic Test", "Glasgow Coma Scale", "Mentzer Index"; a surname the English
        # list happens to hold ("Harrington") is still a surname
        if any(p in KNOWN_EPONYMS or p in KNOWN_NAMES or common_word(p) or _medical_word(p, extra) for p in parts):
            continue
        add(match.group(1).lower())
    for name in invented_bodies(text):
        add(name)
    for regex in (ACRONYM_INSTRUMENT_RE, ACRONYM_BEFORE_TEST_RE, HYPHEN_INSTRUMENT_RE, CODED_INSTRUMENT_RE):
        for name in (m.group(1).lower() for m in regex.finditer(text)):
            if name not in KNOWN_INSTRUMENTS and name not in extra:
                add(name)
    for match in CODE_RE.finditer(text):
        letters = match.group(1)
        if "-" not in match.group(0):
            continue  # "PDE5", "DMT1", "TMPRSS6", "AT1": gene and receptor names; invented codes come hyphenated
        if letters.islower() or letters.lower() in KNOWN_CODE_PREFIXES or letters.lower() in extra:
            continue
        add(match.group(0).lower())
    for match in NAME_RE.finditer(text):
        w = match.group().lower()
        if w in seen or w in KNOWN_NAMES or len(w) < MIN_NAME or not w.isalpha():
            continue
        named = _naming_context(text, match.start(), match.end())
        named = named or bool(re.match(r"-[A-Z]", text[match.end() :]))  # "Lumafen-Plus", "cardiolysin-M"
        # a word built on a clinical ending ("-lytic") that qualifies a condition ("ferrolytic gastritis"), unless it
        # starts on a known combining form too ("haemolytic anaemia", "nephrotic syndrome", "hypovolaemic shock")
        qualifier = w.endswith(CLINICAL_PART_SUFFIXES) and not w.startswith(MEDICAL_PREFIXES)
        named = named or (qualifier and bool(CONDITION_AFTER.match(text[match.end() :][:24])))
        # "PlasmoScan": a product's shape; an all-capital word is an acronym ("SEAQUAMAT", a trial's name)
        camel = any(c.isupper() for c in match.group()[1:]) and not match.group().isupper()
        # A word made of medical parts ("cardio" + "lysin") passes as real, except where a name is expected.
        if listed_word(w, extra) or (real_word(w, extra) and not named and not camel):
            continue
        if w.startswith(MEDICAL_PREFIXES) and w.endswith(CLINICAL_PART_SUFFIXES) and not camel:
            continue  # a combining form and a clinical ending: a clinical term even where a name is expected
        before = text[: match.start()].rstrip()
        inside = bool(before) and before[-1] not in ".!?:-*•\n" and not before[-1].isdigit()
        if match.group()[0].isupper() and inside:
            # A capital inside a sentence is a proper name (Hashimoto, Giemsa) unless it is shaped or used as a product.
            if not (named or camel):
                continue
        elif not (named or w.endswith(SUBSTANCE_ENDINGS)):
            continue
        add(w)
    return out


HASHTAG = re.compile(r"(?<![\w&])#[A-Za-z]\w*")


def invented(text: str, known_words: Iterable[str] = ()) -> tuple[list[str], list[str]]:
    """(drug-like words, invented words): `invented_terms` (drug-shaped names) plus `invented_names` (names of
    any shape), each word once, in order of appearance."""
    text = HASHTAG.sub(" ", text)  # "#HeartHealth" tags a post; it names no drug
    candidates, shaped = invented_terms(text, known_words)
    # A drug-shaped word that the reference files name is real ("histidine" of histidine-rich protein 2).
    shaped = [w for w in shaped if not (_variants(w) & asset_words())]
    names = [w for w in invented_names(text, known_words) if w not in shaped]
    return candidates + [w for w in names if w not in candidates], shaped + names


def clinical_term(word: str) -> bool:
    """A dictionary drug that is no everyday English word ("prednisolone", "fluconazole"), or a word built on a
    clinical ending ("hyperuricaemia", "nephropathy")."""
    w = word.lower()
    if w.endswith(CLINICAL_SUFFIXES) and len(w) >= 7 and _checker().word_frequency[w] < 2000:  # not "diagnosis"
        return True
    return known_drug(w) and not (_variants(w) & english_words())


COMMON = 6000  # pyspellchecker frequency above which a word is everyday English ("heart", "major", "attack")


@lru_cache(maxsize=4096)
def common_word(word: str) -> bool:
    """An everyday English word (frequent in the pyspellchecker list), not a medical name."""
    english_words()  # one clear error when the list is missing
    return _checker().word_frequency[word.lower()] > COMMON


@lru_cache(maxsize=1)
def _checker():
    from spellchecker import SpellChecker

    return SpellChecker()
