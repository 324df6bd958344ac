"""Composing the shipped conf/ with Hydra outside a Hydra app (CLIs, tests), and medqa's OmegaConf resolvers."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from medqa.core.distributed import shared_stamp
from medqa.core.paths import ASSETS, CONF_DIR


def _remainder(*shares: float) -> float:
    """1 - sum(shares): `chatdoctor: ${remainder:${.wikidoc}}` lets a sweep set one share of a two-way mix."""
    try:
        left = 1.0 - sum(float(s) for s in shares)
    except (TypeError, ValueError) as err:
        raise ValueError(f"${{remainder:...}} takes numbers, got {list(shares)}") from err
    return round(left, 10)  # 1 - 0.15 is 0.8500000000000001


def register_resolvers() -> None:
    """medqa's interpolations, registered once (called before anything composes or resolves a config):
    ${asset:embedded/chatdoctor.jsonl} -> an absolute path into the package's shipped files, from any cwd;
    ${run_stamp:%Y-%m-%d/%H-%M-%S-%f} -> the time rank 0 started, the same on every rank of a torchrun job;
    ${remainder:${.wikidoc}} -> 1 - the other shares."""
    if not OmegaConf.has_resolver("asset"):
        OmegaConf.register_new_resolver("asset", lambda rel: str(ASSETS / rel))
    if not OmegaConf.has_resolver("run_stamp"):
        OmegaConf.register_new_resolver("run_stamp", shared_stamp, use_cache=True)
    if not OmegaConf.has_resolver("remainder"):
        OmegaConf.register_new_resolver("remainder", _remainder)


def compose_config(overrides: list[str] | None = None) -> DictConfig:
    """Compose conf/config.yaml with overrides, outside a Hydra app (CLIs, tests)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides or []), return_hydra_config=False)
