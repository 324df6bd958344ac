"""The preview CLI: provenance table, cleaned examples and the exported mix, with no model weights loaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medqa.cli.data import main

ROOT = Path(__file__).resolve().parent.parent


def test_preview_prints_provenance_and_exports_the_mix(base_dir, shrink_overrides, tmp_path, capsys):
    out_file = tmp_path / "mix.jsonl"
    argv = [*shrink_overrides, "data.mix.chatdoctor=0.6666667", "data.mix.wikidoc=0.3333333"]
    main([*argv, "--examples", "2", "--export", str(out_file)])
    printed = capsys.readouterr().out
    for text in (
        "platform_in_input",
        "strip_filler_pass2",
        "max_tokens_512",
        "533 of 533",
        "list share sampled",
        "fingerprint:",
    ):
        assert text in printed, text
    assert "mix: 720 train + 80 eval of 800 asked (chatdoctor 66.6%, wikidoc 33.4%)" in printed
    assert printed.count("\nQ: ") == 2 and f"exported 800 rows to {out_file}" in printed
    rows = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert [r["split"] for r in rows].count("eval") == 80 and {r["source"] for r in rows} == {"chatdoctor", "wikidoc"}
    with pytest.raises(FileExistsError, match="exists"):  # an export is never overwritten
        main([*argv, "--export", str(out_file)])


def test_module_entrypoint_without_tokenizer(run_module):
    out = run_module("medqa.data", "data.total=100", "--no-token-filter", "--examples", "1", timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "mix: 90 train + 10 eval of 100 asked" in out.stdout and "max_tokens_512" not in out.stdout
