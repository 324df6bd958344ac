"""`python -m medqa.train`. Fine-tune: the Hydra app in medqa.cli.train."""

from medqa.cli.train import cli

if __name__ == "__main__":
    cli()
