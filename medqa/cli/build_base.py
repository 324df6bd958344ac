"""`python -m medqa.build_base [overrides] [--force]`: build (or find) the embedded base model of a recipe and
print where it lives (medqa.model.tiny.build does the work)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from medqa.config.validate import checked_recipe
from medqa.core.errors import exit_on_error
from medqa.core.paths import cache_root
from medqa.model.tiny import build


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=build.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the model group, e.g. model.recipe.seed=1")
    parser.add_argument("--force", action="store_true", help="rebuild even if cached (the old copy is kept)")
    parser.add_argument("--ship", action="store_true", help=f"rebuild the copy shipped in {build.SHIPPED_DIR}")
    args = parser.parse_args(argv)

    recipe = exit_on_error("medqa.build_base", lambda: checked_recipe(args.overrides))

    def build_or_find() -> Path:
        if args.ship:
            build.SHIPPED_DIR.parent.mkdir(parents=True, exist_ok=True)
            build.build_base(recipe, build.SHIPPED_DIR, build.recipe_key(recipe))  # replaces the copy git holds
            return build.SHIPPED_DIR
        if args.force:
            cached = cache_root() / "base" / f"tiny-{build.recipe_key(recipe)}"
            if cached.exists():
                cached.rename(cached.with_name(f"{cached.name}.old-{int(time.time())}"))
            return build.ensure_base(recipe, skip_shipped=True)
        return build.ensure_base(recipe)

    # A read-only or full cache: one line naming the folder (a model already there is kept).
    path = exit_on_error("medqa.build_base", build_or_find, bad_input=(OSError,))
    info = json.loads((path / "build_info.json").read_text())
    print(f"embedded base model: {path}{' (shipped)' if path == build.SHIPPED_DIR else ''}")
    print(
        f"  {info['parameters']:,} parameters, vocab {info['vocab_size']}, "
        f"{info['tokens_seen']:,} tokens seen ({info['pretrain_tokens']:,}-token corpus)"
    )
    print(
        f"  pretraining loss {info['first_loss']:.3f} -> {info['final_loss']:.3f} "
        f"(perplexity {info['final_perplexity']:.1f}) in {info['seconds']} s"
    )


if __name__ == "__main__":
    main()
