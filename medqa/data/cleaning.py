"""Per-row cleaning of QA sources: the seed's ChatDoctor filters and filler stripping, an OCR-glitch repair
and detector, and the structural checks every source gets. Pure functions on strings; each rule is switched
by `CleaningSettings` and counted, so provenance shows what every rule did to every source."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from medqa.settings.data import CleaningSettings, check_cleaning

# --- patterns -------------------------------------------------------------------------------------------
# A salutation at the very start: "Hi,", "Hello and ", "Dear user,", "Hello " before a capital (after repair).
_SALUTE = re.compile(
    r"^(?i:hi+|hello|hey|dear(?:\s+(?:sir|madam|user|friend|patient|member))?|greetings|"
    r"good\s+(?:morning|afternoon|evening|day))\b(?:\s+(?i:there|sir|madam|friend|dear))?"
    r"(?:\s*[,.!:;-]+\s*|\s+(?i:and)\s+|\s+(?=[A-Z]))"
)
# A whole leading sentence of greeting / acknowledgement / platform filler.
_GREETING_SENTENCE = re.compile(
    r"^(?i:welcome\b|greetings\b|thanks?\b(?:\s+you)?\s+(?:for|a\s+lot|again)\b|"
    r"i\s+(?:have\s+)?(?:carefully\s+)?(?:gone\s+through|went\s+through|read|reviewed|understood|noted)\b"
    r"[^.!?]{0,60}\b(?:query|question|concern|history|case|details|post)|"
    r"i\s+(?:can\s+)?understand\s+your\s+(?:concern|worry|query)|"
    r"[^.!?]{0,60}\b(?:chat\s*doctor|healthcare\s*magic)\b)"
    r"[^.!?]*[.!?]+\s*"
)
# A signature at the very end: "Regards, Dr. Rakesh Kumar", "Thanks and regards.", "Thank you."
_SIGNATURE = re.compile(
    r"\s*(?i:(?:best\s+|kind\s+|warm\s+)?regards|sincerely|yours\s+(?:truly|sincerely)|"
    r"thanks(?:\s+(?:and|&)\s+regards)?|thank\s+you)"
    r"[\s,.!-]*(?:(?i:dr)\.?\s*)?(?:[A-Z][\w'-]*\.?\s*){0,4}$"
)
# The start of a closing sentence that is a sign-off.
_SIGNOFF_SENTENCE = re.compile(
    r"^(?i:hope\s+(?:this|that|it|i|my|the|you)\b|take\s+care|wish(?:ing)?\s+you|best\s+wishes|good\s+luck|"
    r"get\s+well|feel\s+free|let\s+me\s+know|thanks?\s+(?:you\s+)?for\s+(?:using|choosing|asking|writing|"
    r"contacting|the\s+query|your\s+query)|stay\s+(?:safe|healthy|blessed)|god\s+bless|"
    r"(?:please\s+)?(?:do\s+)?(?:write|revert)\s+back)"
)
_STARTS_GREETING = re.compile(
    r"^(?i:(?:hi+|hello|hey|greetings)\b|dear\s+\w+\s*,|welcome\s+to\b|thanks?(?:\s+you)?\s+(?:for|a\s+lot|again)\b)"
)
# Sentence boundaries: a full stop, ! or ? followed by space (a closing sentence is the text after the last).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"\S+")

# OCR-style glitches of the scraped forum: "HiT hanks" (a capital moved across a space), "HelloThanks"
# (words glued), "Doctor.I have" / "Hello,welcome" (a space lost after punctuation).
_SPLIT_CAPITAL = re.compile(r"\b([A-Z][a-z]*)([A-Z]) ([a-z]{2,})\b")
_SPLIT_KNOWN = {"thanks", "thank", "hope", "welcome", "regards", "hello", "please", "take", "wish", "sorry"}
_GLUED_GREETING = re.compile(r"\b(Hi|Hello|Hey|Dear)(?=[A-Z][a-z])")
_NO_SPACE_PERIOD = re.compile(r"(?<=[a-z][.!?])(?=[A-Z](?:[a-z]|\b))")
_NO_SPACE_COMMA = re.compile(r"(?<=[A-Za-z]),(?=[A-Za-z])")
# What is still broken after repair: a stray capital before a space ("DrT hanks"), or a glued CamelCase word
# that is not a name or a known brand (McDonald, PubMed, ...).
# Units and immunoglobulins (pH, mL, IgM) share the shape: lower-case starts and Ig* are not glitches.
_RESIDUE = re.compile(
    r"\b(?!Ig[ADEGM]\b)[A-Z][a-z]+[A-Z] [a-z]{2,}\b|\b(?!Mc|Mac|De|Di|La|Le|Von|Van)[A-Z][a-z]+[A-Z][a-z]+\b"
)
_RESIDUE_ALLOWED = {"PubMed", "YouTube", "WhatsApp", "LinkedIn", "PowerPoint", "GeneXpert", "ChatDoctor"}

# A list-formatted answer: some line starts with a bullet or "1." / "1)".
LIST_LINE = re.compile(r"(?m)^[ \t]*(?:[-*\u2022\u00b7]|\d+[.)])[ \t]+\S")


# --- single-string rules (public: tests and notebooks use them directly) --------------------------------
def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def strip_leading(text: str) -> str:
    """One pass at the start: a salutation, then one greeting/acknowledgement sentence."""
    out = _SALUTE.sub("", text, count=1)
    out = _GREETING_SENTENCE.sub("", out, count=1)
    return _cap(out) if out != text else text


def strip_trailing(text: str) -> str:
    """One pass at the end: a signature, then one closing sign-off sentence."""
    sig = _signature(text)
    out = (text[: sig.start()] if sig else text).rstrip()
    parts = _SENTENCE_END.split(out)
    if len(parts) > 1 and _SIGNOFF_SENTENCE.match(parts[-1]):
        out = out[: len(out) - len(parts[-1])].rstrip()
    elif len(parts) == 1 and _SIGNOFF_SENTENCE.match(out):
        out = ""
    return out if out != text.rstrip() else text


def _signature(text: str) -> re.Match | None:
    # A signature is short: searching only the tail keeps this linear on long answers.
    return _SIGNATURE.search(text, max(0, len(text) - 120))


def strip_filler(text: str, passes: int = 2) -> tuple[str, list[bool]]:
    """Greetings and sign-offs, `passes` times; returns the text and which passes changed it."""
    changed = []
    for _ in range(passes):
        new = strip_trailing(strip_leading(text))
        changed.append(new != text)
        text = new
    return text.strip() if any(changed) else text, changed


def keyword_pattern(keywords: list[str]) -> re.Pattern:
    return re.compile(r"\b(?:" + "|".join(re.escape(k) for k in keywords) + r")\b", re.IGNORECASE)


def drop_trailing_filler(text: str, keywords: list[str] | re.Pattern) -> str:
    """Drop closing sentences that contain a filler keyword, while at least one other sentence is left."""
    pattern = keywords if isinstance(keywords, re.Pattern) else keyword_pattern(keywords)
    body = text.rstrip()
    starts = [0, *(m.end() for m in _SENTENCE_END.finditer(body))]  # where each sentence begins
    cut = len(body)
    while len(starts) > 1 and pattern.search(body[starts[-1] : cut]):
        cut = starts.pop()
    return text if cut == len(body) else body[:cut].rstrip()


def repair_ocr(text: str) -> str:
    """Fix the glitches that are safe to fix (known words split or glued, a space lost after punctuation)."""

    def split(m: re.Match) -> str:
        if (m[2] + m[3]).lower() in _SPLIT_KNOWN:
            return f"{m[1]}. {m[2]}{m[3]}"
        return m[0]

    out = _SPLIT_CAPITAL.sub(split, text)
    out = _GLUED_GREETING.sub(r"\1. ", out)
    out = _NO_SPACE_PERIOD.sub(" ", out)
    return _NO_SPACE_COMMA.sub(", ", out)


def ocr_residue(text: str) -> list[str]:
    """Glitches left after repair (empty when the text looks clean)."""
    return [m[0] for m in _RESIDUE.finditer(text) if m[0] not in _RESIDUE_ALLOWED]


def has_residual_filler(text: str) -> bool:
    """The seed's final check: the answer still opens with a greeting or closes with a sign-off."""
    last = _SENTENCE_END.split(text.rstrip())[-1]
    return bool(_STARTS_GREETING.match(text) or _signature(text) or _SIGNOFF_SENTENCE.match(last))


def is_list_formatted(text: str) -> bool:
    """Some line starts with a bullet or "1." / "1)" (what drove the seed's runaway lists)."""
    return bool(LIST_LINE.search(text))


def n_words(text: str) -> int:
    return len(_WORD.findall(text))


# --- the pipeline over a whole source ---------------------------------------------------------------------
@dataclass
class RuleCount:
    rule: str
    changed: int = 0
    dropped: int = 0
    flagged: int = 0
    remaining: int = 0
    examples: list[int] = field(default_factory=list)  # first few row indices the rule touched

    def note(self, row: int) -> None:
        if len(self.examples) < 5:
            self.examples.append(row)


Row = tuple[int, str, str]  # (row index in the source, question, answer)


def clean_rows(
    questions: list, answers: list, settings: CleaningSettings, where: str
) -> tuple[list[Row], list[RuleCount]]:
    """Run the enabled rules in order over a source; returns the kept rows and one count per rule.
    `where` names the source in errors (e.g. "data.sources.chatdoctor (file.jsonl)")."""
    check_cleaning(settings, where)
    rows: list[Row] = []
    bad = RuleCount("bad_rows")
    for i, (q, a) in enumerate(zip(questions, answers, strict=True)):
        problem = _cell_problem(q, "question") or _cell_problem(a, "answer")
        if problem:
            if settings.bad_rows == "error":
                raise ValueError(f"{where}: row {i}: {problem} (set bad_rows=skip to drop such rows)")
            bad.dropped += 1
            bad.note(i)
            continue
        rows.append((i, q, a))
    bad.remaining = len(rows)
    counts = [bad]
    for name, rule in _rules(settings):
        count = RuleCount(name)
        kept: list[Row] = []
        for row in rows:
            verdict = rule(row)
            if verdict is None:
                count.dropped += 1
                count.note(row[0])
            elif verdict == "flag":
                count.flagged += 1
                count.note(row[0])
                kept.append(row)
            else:
                if verdict != row:
                    count.changed += 1
                    count.note(row[0])
                kept.append(verdict)
        count.remaining = len(kept)
        counts.append(count)
        rows = kept
    return rows, counts


def _cell_problem(value, what: str) -> str | None:
    if value is None:
        return f"{what} is missing"
    if not isinstance(value, str):
        return f"{what} is a {type(value).__name__}, not a string"
    if not value.strip():
        return f"{what} is empty"
    return None


RuleFn = Callable[[Row], "Row | str | None"]  # a new row, "flag", or None (drop)


def _rules(s: CleaningSettings) -> list[tuple[str, RuleFn]]:
    """The enabled rules, in the order they run."""
    rules: list[tuple[str, RuleFn]] = []
    if s.platform_in_input:
        platform = re.compile(s.platform_pattern, re.IGNORECASE)
        rules.append(("platform_in_input", lambda r: None if platform.search(r[1]) else r))
    if s.ocr_repair:
        rules.append(("ocr_repair", lambda r: (r[0], r[1], repair_ocr(r[2]))))
    if s.strip_filler:
        for p in range(s.strip_passes):  # one counted step per pass: pass 2 shows what pass 1 exposed
            rules.append((f"strip_filler_pass{p + 1}", _strip_once))
    if s.trailing_filler:
        keywords = keyword_pattern(list(s.filler_keywords))
        rules.append(("trailing_filler", lambda r: (r[0], r[1], drop_trailing_filler(r[2], keywords))))
    if s.strip_filler or s.trailing_filler:
        rules.append(("empty_after_strip", lambda r: r if r[2].strip() else None))
    if s.ocr_residue != "keep":
        mark = "flag" if s.ocr_residue == "flag" else None
        rules.append((f"ocr_residue_{s.ocr_residue}", lambda r: mark if ocr_residue(r[2]) else r))
    if s.residual_filler == "drop":
        rules.append(("residual_filler", lambda r: None if has_residual_filler(r[2]) else r))
    if s.min_answer_words:
        least = s.min_answer_words
        rules.append((f"min_answer_words_{least}", lambda r: r if n_words(r[2]) >= least else None))
    if s.max_words:
        most = s.max_words
        rules.append((f"max_words_{most}", lambda r: r if n_words(r[1]) + n_words(r[2]) <= most else None))
    if s.dedupe:
        rules.append(("duplicate", _dedupe()))
    return rules


def _strip_once(row: Row) -> Row:
    text, _ = strip_filler(row[2], passes=1)
    return row if text == row[2] else (row[0], row[1], text)


def _dedupe() -> RuleFn:
    seen: set[tuple[str, str]] = set()

    def rule(row: Row) -> Row | None:
        key = (row[1].strip(), row[2].strip())
        if key in seen:
            return None
        seen.add(key)
        return row

    return rule
