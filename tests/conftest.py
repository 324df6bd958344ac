"""Shared fixtures: the real conf/ composed with Hydra's compose API, and the embedded base model
(built once into the real cache, as `make run` would)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub here: fail at once instead of retrying


@pytest.fixture(scope="session")
def compose():
    from medqa.config import compose_config

    return compose_config


@pytest.fixture(scope="session")
def base_dir(compose):
    from medqa.build_base import ensure_base
    from medqa.config import tiny_recipe

    return ensure_base(tiny_recipe(compose([]).model))


@pytest.fixture(scope="session")
def tokenizer(base_dir):
    from medqa.modeling import ModelSettings, load_tokenizer

    return load_tokenizer(str(base_dir), ModelSettings())
