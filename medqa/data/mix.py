"""Data sources (hub datasets or local files, loaded through `datasets`), their cleaning, mixing by ratio
with nested seeded samples, the stratified train/eval split in TRL's conversational prompt/completion
format (loss on the answer only), and the provenance of every row count on the way.

Preview without a model:  python -m medqa.data [overrides] [--examples N] [--export mix.jsonl]"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from pathlib import Path

from datasets import Dataset

from medqa.core.atomic import atomic_path
from medqa.data.cleaning import clean_rows, is_list_formatted
from medqa.data.source_files import check_local_file
from medqa.settings.data import DataSettings, SourceSettings, validate_mix

log = logging.getLogger(__name__)

LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
HUB_PROBE_SECONDS = 3.0  # an unreachable hub fails in seconds, not after datasets' ~50 s of retries


def check_sources(settings: DataSettings) -> None:
    """Everything checkable without reading a row or the network: the mix, and each used source's settings
    and location."""
    validate_mix(settings)
    for name, share in settings.mix.items():
        if share > 0:
            settings.sources[name].check(f"data.sources.{name}")
    check_locations(settings)


def check_locations(settings: DataSettings) -> None:
    """Each used source names an existing local file of a known format, or a hub id."""
    for name, share in settings.mix.items():
        if share > 0:
            _check_location(f"data.sources.{name}", settings.sources[name])


def check_hubs_reachable(settings: DataSettings) -> None:
    """Whether each used hub dataset can be reached (seconds, before any model is built)."""
    for name, share in settings.mix.items():
        source = settings.sources[name]
        if share > 0 and not source.path and not Path(source.hub_id).is_dir():
            _probe_hub(f"data.sources.{name}", source)


def check_data(settings: DataSettings) -> None:
    """check_sources, then check_hubs_reachable."""
    check_sources(settings)
    check_hubs_reachable(settings)


def _check_location(key: str, source: SourceSettings) -> None:
    if source.path:
        path = Path(source.path)
        if not path.is_file():
            raise FileNotFoundError(f"{key}.path={source.path}: no such file")
        if path.suffix not in LOCAL_FORMATS:
            raise ValueError(f"{key}.path={source.path}: unknown format {path.suffix!r} (use {sorted(LOCAL_FORMATS)})")
    elif not source.hub_id:
        raise ValueError(f"{key}: set either path (a local file) or hub_id")


def load_source(name: str, source: SourceSettings) -> Dataset:
    """Load one source through `datasets.load_dataset`, with errors that name the source and what to do."""
    from datasets import load_dataset

    key = f"data.sources.{name}"
    source.check(key)
    _check_location(key, source)
    if source.path:
        check_local_file(source.path, key)  # a bad byte, line or empty file: named here, not by datasets
        try:
            ds = load_dataset(LOCAL_FORMATS[Path(source.path).suffix], data_files=source.path, split="train")
        except Exception as err:  # malformed json/csv/parquet: datasets raises many types
            raise ValueError(f"{key}.path={source.path}: could not read it ({type(err).__name__}: {err})") from err
    elif Path(source.hub_id).is_dir():  # a downloaded snapshot of the hub repo: same call, no network
        ds = load_dataset(source.hub_id, split=source.split)
    else:
        ds = _load_hub(key, source)
    missing = [c for c in source.columns.values() if c not in ds.column_names]
    if missing:
        where = f"{key}.path={source.path}" if source.path else f"{key} ({source.hub_id})"
        raise ValueError(f"{where}: columns {missing} not in {ds.column_names} (set {key}.columns)")
    return ds


def _hub_advice(key: str, source: SourceSettings) -> str:
    return (
        f"Without network, download it elsewhere (e.g. as .parquet) and set {key}.path=/path/to/file.parquet "
        f"(or .jsonl/.csv with columns {sorted(source.columns.values())}), or {key}.hub_id=/path/to/snapshot_dir; "
        "if it is already in the datasets cache, set HF_HUB_OFFLINE=1."
    )


def _probe_hub(key: str, source: SourceSettings) -> None:
    """Fail in seconds when the hub cannot answer (datasets itself retries for about a minute)."""
    from huggingface_hub import constants

    if not constants.HF_HUB_OFFLINE:  # offline, datasets answers from its cache or fails at once
        reason = hub_unreachable(constants.ENDPOINT)
        if reason:
            raise ConnectionError(
                f"{key}: hub dataset {source.hub_id!r} cannot be fetched: {reason}. {_hub_advice(key, source)}"
            )


def _load_hub(key: str, source: SourceSettings) -> Dataset:
    from datasets import load_dataset

    _probe_hub(key, source)
    try:
        return load_dataset(source.hub_id, split=source.split)
    except Exception as err:  # datasets raises several types for "offline / not found / no such split"
        raise ConnectionError(
            f"{key}: could not load hub dataset {source.hub_id!r} split {source.split!r} "
            f"({type(err).__name__}: {str(err)[:200]}). {_hub_advice(key, source)}"
        ) from err


def hub_unreachable(endpoint: str, timeout: float = HUB_PROBE_SECONDS) -> str | None:
    """Why the hub endpoint gives no HTTP answer within `timeout` seconds (DNS included), or None if it
    answers at all (an HTTP error status is an answer: load_dataset then reports the real problem)."""
    import urllib.error
    import urllib.request

    result: list[str | None] = []
    silent = f"{endpoint} did not answer within {timeout:g} s"

    def probe() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout).close()
            result.append(None)
        except urllib.error.HTTPError:
            result.append(None)
        except (OSError, ValueError) as err:
            reason = getattr(err, "reason", err)
            # the socket's own timeout can fire before join() below returns: the same silence, said the same way
            result.append(silent if isinstance(reason, TimeoutError) else f"{endpoint} unreachable ({reason})")

    thread = threading.Thread(target=probe, daemon=True)  # name resolution ignores socket timeouts
    thread.start()
    thread.join(timeout)
    return result[0] if result else silent


def to_example(question: str, answer: str, system_prompt: str, source: str, row: int = -1) -> dict:
    """One row in TRL's conversational prompt/completion format, with where it came from."""
    prompt = [{"role": "user", "content": question}]
    if system_prompt:
        prompt.insert(0, {"role": "system", "content": system_prompt})
    completion = [{"role": "assistant", "content": answer}]
    return {"prompt": prompt, "completion": completion, "source": source, "source_row": row}


def seeded_order(n: int, seed: int, name: str) -> list[int]:
    """A per-source permutation keyed by the original row index: dropping or adding other rows (a cleaning
    rule, a share) never reorders the rest, so samples stay nested across ratios and cleaning settings."""
    key = lambda i: hashlib.sha256(f"{seed}:{name}:{i}".encode()).digest()  # noqa: E731
    return sorted(range(n), key=key)


def token_lengths(examples: list[dict], tokenizer) -> list[int]:
    """Tokens of each example as the model sees it: the chat template over system, user and assistant."""
    texts = [tokenizer.apply_chat_template(e["prompt"] + e["completion"], tokenize=False) for e in examples]
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def build_datasets(settings: DataSettings, tokenizer=None) -> tuple[Dataset, Dataset, dict]:
    """Clean each source, draw its share, split train/eval per source; returns (train, eval, provenance).
    With a tokenizer, examples over `settings.max_tokens` chat-formatted tokens are skipped while drawing.
    Each source is checked (and a hub probed) as it loads (load_source); check_data does it all up front."""
    validate_mix(settings)
    train_rows: list[dict] = []
    eval_rows: list[dict] = []
    sources: dict[str, dict] = {}
    for name, share in settings.mix.items():
        want = round(settings.total * share)
        source = settings.sources[name]
        where = source.path or source.hub_id
        prov: dict = {"where": where, "style": source.style, "share": share, "wanted": want}
        sources[name] = prov
        if want == 0:
            prov.update(loaded=None, sampled=0, train=0, eval=0)
            continue
        ds = load_source(name, source)
        prov["loaded"] = len(ds)
        if want > len(ds) and not settings.allow_fewer:
            raise ValueError(_shortfall(name, share, want, len(ds), "loaded", where))
        q, a = source.columns["question"], source.columns["answer"]
        questions, answers = ds[q], ds[a]
        rows, steps = clean_rows(questions, answers, source.cleaning, f"data.sources.{name} ({where})")
        prov["steps"] = [vars(s) for s in steps]
        prov["cleaned"] = len(rows)
        picked, prov["max_tokens"] = _draw(name, rows, want, settings, tokenizer)
        if len(picked) < want:
            msg = _shortfall(name, share, want, len(picked), "left after cleaning and the token filter", where)
            if not settings.allow_fewer:
                raise ValueError(msg)
            log.warning("%s; data.allow_fewer=true: taking all %d", msg, len(picked))
        n_eval = max(1, round(len(picked) * settings.eval_fraction)) if len(picked) > 1 else 0
        eval_rows += picked[:n_eval]  # stratified: every source is in eval, at its own share
        train_rows += picked[n_eval:]
        prov.update(sampled=len(picked), shortfall=want - len(picked), train=len(picked) - n_eval, eval=n_eval)
        prov["list_share"] = {
            "loaded": _list_share(x for x in answers if isinstance(x, str)),
            "cleaned": _list_share(r[2] for r in rows),
            "sampled": _list_share(_answer(e) for e in picked),
        }
    train_rows = [train_rows[i] for i in seeded_order(len(train_rows), settings.seed, "train-order")]
    every = train_rows + eval_rows
    provenance = {
        "sources": sources,
        "mix": {
            "total": settings.total,
            "train": len(train_rows),
            "eval": len(eval_rows),
            "share": {n: _ratio(sum(e["source"] == n for e in every), len(every)) for n in settings.mix},
            "list_share": {
                "train": _list_share(_answer(e) for e in train_rows),
                "eval": _list_share(_answer(e) for e in eval_rows),
                "all": _list_share(_answer(e) for e in every),
            },
        },
        "fingerprint": {"train": fingerprint(train_rows), "eval": fingerprint(eval_rows)},
        "settings": {
            "seed": settings.seed,
            "eval_fraction": settings.eval_fraction,
            "max_tokens": settings.max_tokens if tokenizer is not None else None,
            "allow_fewer": settings.allow_fewer,
        },
    }
    return Dataset.from_list(train_rows), Dataset.from_list(eval_rows), provenance


def _draw(name: str, rows: list, want: int, settings: DataSettings, tokenizer) -> tuple[list[dict], dict | None]:
    """The first `want` cleaned rows in the source's seeded order that fit the token limit (checked lazily:
    only the rows walked past are tokenized)."""
    order = [rows[i] for i in seeded_order(len(rows), settings.seed, name)]
    examples = (to_example(q, a, settings.system_prompt, name, i) for i, q, a in order)
    if tokenizer is None or not settings.max_tokens:
        return [e for _, e in zip(range(want), examples, strict=False)], None
    picked: list[dict] = []
    stats = {"limit": settings.max_tokens, "checked": 0, "dropped": 0, "examples": []}
    while len(picked) < want:
        chunk = [e for _, e in zip(range(max(64, want - len(picked))), examples, strict=False)]
        if not chunk:
            break
        for example, n in zip(chunk, token_lengths(chunk, tokenizer), strict=True):
            if len(picked) == want:
                break
            stats["checked"] += 1
            if n > settings.max_tokens:
                stats["dropped"] += 1
                if len(stats["examples"]) < 5:
                    stats["examples"].append(example["source_row"])
            else:
                picked.append(example)
    return picked, stats


def _shortfall(name: str, share: float, want: int, have: int, stage: str, where: str = "") -> str:
    return (
        f"data.mix.{name}={share} asks for {want} rows, source {where} has {have} {stage}: short by {want - have}. "
        "Lower data.total or the share, or set data.allow_fewer=true to take what exists"
    )


def _answer(example: dict) -> str:
    return example["completion"][0]["content"]


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _list_share(answers) -> float | None:
    flags = [is_list_formatted(a) for a in answers]
    return _ratio(sum(flags), len(flags))


def fingerprint(rows: list[dict]) -> str:
    """Hash of rows in order: equal fingerprints mean byte-identical data."""
    return hashlib.sha256("\n".join(json.dumps(r, sort_keys=True) for r in rows).encode()).hexdigest()[:16]


def export_jsonl(train: Dataset, evaluation: Dataset, path: Path) -> int:
    """Write the mix, one example a line with its split, as a new file written whole or not at all; returns
    the number of lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with atomic_path(path, exclusive=True) as tmp, tmp.open("w", encoding="utf-8") as f:
        for split, ds in (("train", train), ("eval", evaluation)):
            for row in ds:
                f.write(json.dumps({"split": split, **row}, ensure_ascii=False) + "\n")
                n += 1
    return n
