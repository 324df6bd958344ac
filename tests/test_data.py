"""Mixing the embedded sources: shares validated, deterministic, nested across ratios, eval stratified."""

from __future__ import annotations

import dataclasses

import pytest

from medqa.config import settings_from_cfg
from medqa.data import build_datasets, load_source, validate_mix


@pytest.fixture(scope="module")
def data_settings(compose):
    return settings_from_cfg(compose(["data.total=200"])).data


def _answers(ds, source):
    return [r["completion"][0]["content"] for r in ds if r["source"] == source]


def test_mix_counts_and_stratified_eval(data_settings):
    train, evaluation, counts = build_datasets(data_settings)
    assert counts["chatdoctor"]["sampled"] == 170 and counts["wikidoc"]["sampled"] == 30
    assert len(train) + len(evaluation) == 200
    assert {r["source"] for r in evaluation} == {"chatdoctor", "wikidoc"}
    assert counts["wikidoc"]["eval"] == 3


def test_examples_are_conversational_prompt_completion(data_settings):
    train, _, _ = build_datasets(data_settings)
    row = train[0]
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    assert row["prompt"][0]["content"] == data_settings.system_prompt
    assert [m["role"] for m in row["completion"]] == ["assistant"]


def test_same_seed_same_rows_other_seed_other_rows(data_settings):
    a = build_datasets(data_settings)[2]["fingerprint"]
    assert build_datasets(data_settings)[2]["fingerprint"] == a
    other = dataclasses.replace(data_settings, seed=7)
    assert build_datasets(other)[2]["fingerprint"]["train"] != a["train"]


def test_larger_share_takes_a_superset(data_settings):
    small = dataclasses.replace(data_settings, mix={"chatdoctor": 0.85, "wikidoc": 0.15})
    large = dataclasses.replace(data_settings, mix={"chatdoctor": 0.5, "wikidoc": 0.5})
    rows = lambda s: set(_answers(build_datasets(s)[0], "wikidoc") + _answers(build_datasets(s)[1], "wikidoc"))  # noqa: E731
    assert rows(small) < rows(large)


@pytest.mark.parametrize(
    ("mix", "message"),
    [
        ({"chatdoctor": 0.7, "wikidoc": 0.2}, "sum to 0.900000"),
        ({"chatdoctor": 1.2, "wikidoc": -0.2}, r"data.mix.wikidoc=-0.2: a share must be >= 0"),
        ({"chatdoctor": 0.5, "pubmed": 0.5}, r"data.mix.pubmed: no such source"),
    ],
)
def test_bad_mix_is_rejected(data_settings, mix, message):
    with pytest.raises(ValueError, match=message):
        validate_mix(dataclasses.replace(data_settings, mix=mix))


def test_source_too_small_names_the_shortfall(data_settings):
    with pytest.raises(ValueError, match=r"data.mix.chatdoctor=0.9 asks for 1800 rows, source has 940"):
        build_datasets(dataclasses.replace(data_settings, total=2000, mix={"chatdoctor": 0.9, "wikidoc": 0.1}))


def test_missing_file_and_unreachable_hub_are_clear(data_settings):
    src = data_settings.sources["chatdoctor"]
    with pytest.raises(FileNotFoundError, match="data.sources.chatdoctor.path=/nope.jsonl"):
        load_source("chatdoctor", dataclasses.replace(src, path="/nope.jsonl"))
    hub = dataclasses.replace(src, path=None, hub_id="lavita/ChatDoctor-HealthCareMagic-100k")
    with pytest.raises(ConnectionError, match="lavita/ChatDoctor-HealthCareMagic-100k.*data.sources.chatdoctor.path"):
        load_source("chatdoctor", hub)
