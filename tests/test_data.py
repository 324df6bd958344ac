"""Sources, mixing and provenance on the embedded data and on hub-schema fixtures: shares validated,
deterministic to the byte, nested across ratios after cleaning, eval stratified, bad input named."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from datasets import Dataset

from medqa.config.build import settings_from_cfg
from medqa.data.mix import build_datasets, check_data, export_jsonl, hub_unreachable, load_source, token_lengths
from medqa.settings.data import CleaningSettings, validate_mix

HUB_SAMPLE = Path(__file__).parent / "assets" / "chatdoctor_hub_sample.jsonl"  # lavita's exact columns


@pytest.fixture(scope="module")
def data_settings(compose):
    return settings_from_cfg(compose(["data.total=200"])).data


def _mix(settings, total=None, **shares):
    return dataclasses.replace(settings, mix=shares, total=total or settings.total)


def _rows(result, source):
    train, evaluation, _ = result
    return [
        (r["source_row"], r["completion"][0]["content"])
        for ds in (train, evaluation)
        for r in ds
        if r["source"] == source
    ]


def test_mix_counts_and_stratified_eval(data_settings):
    train, evaluation, prov = build_datasets(data_settings)
    cd, wd = prov["sources"]["chatdoctor"], prov["sources"]["wikidoc"]
    assert (cd["sampled"], cd["train"], cd["eval"]) == (170, 153, 17)
    assert (wd["sampled"], wd["train"], wd["eval"]) == (30, 27, 3)
    assert len(train) == 180 and len(evaluation) == 20
    assert {r["source"] for r in evaluation} == {"chatdoctor", "wikidoc"}
    assert prov["mix"]["share"] == {"chatdoctor": 0.85, "wikidoc": 0.15}


def test_provenance_counts_on_the_embedded_sources(data_settings):
    _, _, prov = build_datasets(data_settings)
    cd = prov["sources"]["chatdoctor"]
    steps = {s["rule"]: s for s in cd["steps"]}
    # Facts about the shipped file: 22 questions name the platform, 30 answers carry an OCR glitch.
    assert cd["loaded"] == 940 and steps["platform_in_input"]["dropped"] == 22
    assert steps["ocr_repair"]["changed"] == 30 and steps["ocr_residue_drop"]["dropped"] == 0
    assert steps["strip_filler_pass1"]["changed"] > 800 and steps["strip_filler_pass2"]["changed"] > 100
    assert cd["cleaned"] == 849 == cd["loaded"] - sum(s["dropped"] for s in cd["steps"])
    wd = prov["sources"]["wikidoc"]
    assert [s["rule"] for s in wd["steps"]] == ["bad_rows", "duplicate"] and wd["cleaned"] == 1552
    assert cd["list_share"]["sampled"] == 0.0 and wd["list_share"]["loaded"] > 0.5
    assert 0.05 < prov["mix"]["list_share"]["all"] < 0.15


def test_cleaned_chatdoctor_answers_hold_no_platform_filler(data_settings):
    train, evaluation, _ = build_datasets(_mix(data_settings, total=849, chatdoctor=1.0, wikidoc=0.0))
    answers = [a for _, a in _rows((train, evaluation, None), "chatdoctor")]
    assert len(answers) == 849
    for bad in ("Chat Doctor", "ChatDoctor", "HiT", "Regards", "Take care", "Hope this", "welcome"):
        assert not [a for a in answers if bad in a], bad


def test_examples_are_conversational_prompt_completion(data_settings):
    train, _, _ = build_datasets(data_settings)
    row = train[0]
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    assert row["prompt"][0]["content"] == data_settings.system_prompt
    assert [m["role"] for m in row["completion"]] == ["assistant"]


def test_same_seed_same_bytes_other_seed_other_rows(data_settings, tmp_path):
    a, b = build_datasets(data_settings), build_datasets(data_settings)
    assert export_jsonl(a[0], a[1], tmp_path / "a.jsonl") == 200
    export_jsonl(b[0], b[1], tmp_path / "b.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert a[2]["fingerprint"] == b[2]["fingerprint"]
    other = build_datasets(dataclasses.replace(data_settings, seed=7))[2]["fingerprint"]
    assert other["train"] != a[2]["fingerprint"]["train"]


def test_samples_are_nested_across_ratios_after_cleaning(data_settings):
    """2:1 vs 85/15 at one total: the larger share holds the smaller one's rows; eval nests too."""
    fix = build_datasets(_mix(data_settings, total=600, chatdoctor=0.85, wikidoc=0.15))
    failed = build_datasets(_mix(data_settings, total=600, chatdoctor=0.6666667, wikidoc=0.3333333))
    assert set(_rows(fix, "wikidoc")) < set(_rows(failed, "wikidoc"))
    assert set(_rows(failed, "chatdoctor")) < set(_rows(fix, "chatdoctor"))
    eval_rows = lambda r, s: {x["source_row"] for x in r[1] if x["source"] == s}  # noqa: E731
    assert eval_rows(fix, "wikidoc") <= eval_rows(failed, "wikidoc")
    # Changing only one source's row count leaves the other's rows exactly as they were.
    a = build_datasets(_mix(data_settings, total=200, chatdoctor=0.5, wikidoc=0.5))
    b = build_datasets(_mix(data_settings, total=250, chatdoctor=0.4, wikidoc=0.6))
    assert _rows(a, "chatdoctor") == _rows(b, "chatdoctor")


def test_token_filter_uses_the_models_chat_format(data_settings, tokenizer):
    small = dataclasses.replace(data_settings, max_tokens=150)
    train, evaluation, prov = build_datasets(small, tokenizer)
    tok = prov["sources"]["wikidoc"]["max_tokens"]
    assert tok["limit"] == 150 and tok["dropped"] > 0 and tok["checked"] == 30 + tok["dropped"]
    lengths = token_lengths(list(train) + list(evaluation), tokenizer)
    assert max(lengths) <= 150 and len(lengths) == 200
    big = build_datasets(dataclasses.replace(small, total=400), tokenizer)  # nested under the filter too
    assert set(_rows((train, evaluation, None), "wikidoc")) <= set(_rows(big, "wikidoc"))


@pytest.mark.parametrize(
    ("mix", "message"),
    [
        ({"chatdoctor": 0.7, "wikidoc": 0.2}, "sum to 0.900000"),
        ({"chatdoctor": 1.2, "wikidoc": -0.2}, r"data.mix.wikidoc=-0.2: a share must be >= 0"),
        ({"chatdoctor": 0.5, "pubmed": 0.5}, r"data.mix.pubmed: no such source"),
    ],
)
def test_bad_mix_is_rejected_before_loading(data_settings, mix, message):
    missing = dataclasses.replace(data_settings.sources["chatdoctor"], path="/nope.jsonl")
    settings = dataclasses.replace(data_settings, mix=mix, sources={**data_settings.sources, "chatdoctor": missing})
    with pytest.raises(ValueError, match=message):  # the mix error wins over the missing file
        check_data(settings)
    with pytest.raises(ValueError, match=message):
        validate_mix(settings)


def test_source_too_small_names_the_shortfall_or_takes_what_exists(data_settings):
    short = r"data.mix.chatdoctor=0.9 asks for 1800 rows, source .*chatdoctor.jsonl has 940 loaded"
    with pytest.raises(ValueError, match=short):
        build_datasets(_mix(data_settings, total=2000, chatdoctor=0.9, wikidoc=0.1))
    settings = _mix(data_settings, total=1000, chatdoctor=0.9, wikidoc=0.1)
    short = r"asks for 900 rows, source .*chatdoctor.jsonl has 849 left after cleaning.*short by 51"
    with pytest.raises(ValueError, match=short):
        build_datasets(settings)
    train, evaluation, prov = build_datasets(dataclasses.replace(settings, allow_fewer=True))
    assert prov["sources"]["chatdoctor"]["sampled"] == 849 and prov["sources"]["chatdoctor"]["shortfall"] == 51
    assert len(train) + len(evaluation) == 949


def _hub_settings(data_settings, **where):
    cd = data_settings.sources["chatdoctor"]
    source = dataclasses.replace(cd, **{"path": None, "hub_id": None, **where})
    return _mix(dataclasses.replace(data_settings, sources={"chatdoctor": source}), total=3, chatdoctor=1.0)


def test_hub_schema_fixture_loads_as_snapshot_parquet_and_csv(data_settings, tmp_path):
    """lavita's columns (instruction/input/output) through the same load_dataset paths, in three forms."""
    ds = Dataset.from_json(str(HUB_SAMPLE))
    snapshot = tmp_path / "ChatDoctor-HealthCareMagic-100k"
    (snapshot / "data").mkdir(parents=True)
    ds.to_parquet(str(snapshot / "data" / "train-00000-of-00001.parquet"))
    ds.to_csv(str(tmp_path / "chatdoctor.csv"), index=False)
    results = []
    for where in ({"hub_id": str(snapshot)}, {"path": str(snapshot / "data" / "train-00000-of-00001.parquet")}):
        results.append(build_datasets(_hub_settings(data_settings, **where)))
    # CSV turns the empty question into a missing cell: skipped and counted all the same.
    results.append(build_datasets(_hub_settings(data_settings, path=str(tmp_path / "chatdoctor.csv"))))
    kept = [sorted(_rows(r, "chatdoctor")) for r in results]
    assert kept[0] == kept[1] == kept[2] and [i for i, _ in kept[0]] == [0, 2, 5]
    steps = {s["rule"]: s for s in results[0][2]["sources"]["chatdoctor"]["steps"]}
    assert steps["bad_rows"]["examples"] == [7] and steps["platform_in_input"]["examples"] == [1]
    assert steps["ocr_residue_drop"]["examples"] == [6] and steps["duplicate"]["examples"] == [4]
    assert dict(kept[0])[0].startswith("A blood pressure of 150/95") and dict(kept[0])[0].endswith("kidney tests.")


def test_bad_files_are_named(data_settings, tmp_path):
    src = data_settings.sources["chatdoctor"]
    with pytest.raises(FileNotFoundError, match="data.sources.chatdoctor.path=/nope.jsonl: no such file"):
        load_source("chatdoctor", dataclasses.replace(src, path="/nope.jsonl"))
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"x.txt: unknown format '.txt'"):
        load_source("chatdoctor", dataclasses.replace(src, path=str(tmp_path / "x.txt")))
    (tmp_path / "broken.jsonl").write_text('{"input": "a", "output": "b"}\n{"input": \n')
    with pytest.raises(ValueError, match=r"broken.jsonl:2: not a JSON line"):
        load_source("chatdoctor", dataclasses.replace(src, path=str(tmp_path / "broken.jsonl")))
    (tmp_path / "cols.jsonl").write_text('{"question": "a", "response": "b"}\n')
    missing = r"data.sources.chatdoctor.path=.*cols.jsonl: columns \['input', 'output'\] not in"
    with pytest.raises(ValueError, match=missing):
        load_source("chatdoctor", dataclasses.replace(src, path=str(tmp_path / "cols.jsonl")))


def test_bad_cells_are_counted_or_named(data_settings, tmp_path):
    good = "A fever with a rash in a child needs an examination the same day, since some rashes are emergencies."
    lines = [
        {"input": "q0", "output": good},
        {"input": "q1", "output": ""},
        {"input": "q2", "output": None},
        {"input": "q3", "output": 42},
        {"input": "q0", "output": good},
        {"input": "q5"},
    ]
    path = tmp_path / "cells.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    src = dataclasses.replace(data_settings.sources["wikidoc"], path=str(path))
    settings = _mix(dataclasses.replace(data_settings, sources={"wikidoc": src}), total=1, wikidoc=1.0)
    steps = build_datasets(settings)[2]["sources"]["wikidoc"]["steps"]
    assert steps[0] == {
        "rule": "bad_rows",
        "changed": 0,
        "dropped": 4,
        "flagged": 0,
        "remaining": 2,
        "examples": [1, 2, 3, 5],
    }
    assert steps[1]["rule"] == "duplicate" and steps[1]["examples"] == [4]
    strict = dataclasses.replace(src, cleaning=CleaningSettings(bad_rows="error"))
    with pytest.raises(ValueError, match=rf"data.sources.wikidoc \({path}\): row 1: answer is empty"):
        build_datasets(dataclasses.replace(settings, sources={"wikidoc": strict}))


def test_unreachable_hub_fails_fast_and_names_the_dataset(tmp_path):
    assert "unreachable" in hub_unreachable("http://127.0.0.1:9")
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts connections, never answers
        started = time.time()
        assert "did not answer" in hub_unreachable(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=0.5)
        assert time.time() - started < 2
    # Without HF_HUB_OFFLINE (a user's default), a closed endpoint stops the load in seconds.
    code = (
        "from medqa.data.mix import load_source\nfrom medqa.settings.data import SourceSettings\n"
        "load_source('chatdoctor', SourceSettings(hub_id='lavita/ChatDoctor-HealthCareMagic-100k'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env.update(HF_ENDPOINT="http://127.0.0.1:9", PYTHONPATH=str(Path(__file__).parent.parent), HF_HOME=str(tmp_path))
    started = time.time()
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and time.time() - started < 60
    assert (
        "ConnectionError: data.sources.chatdoctor: hub dataset 'lavita/ChatDoctor-HealthCareMagic-100k'" in out.stderr
    )
    assert "data.sources.chatdoctor.path=/path/to/file.parquet" in out.stderr


def test_offline_hub_source_is_clear(data_settings):
    hub = dataclasses.replace(
        data_settings.sources["chatdoctor"], path=None, hub_id="lavita/ChatDoctor-HealthCareMagic-100k"
    )
    with pytest.raises(ConnectionError, match="lavita/ChatDoctor-HealthCareMagic-100k.*data.sources.chatdoctor.path"):
        load_source("chatdoctor", hub)
