"""`python -m medqa.probe`. Re-decode saved weights: the Hydra app in medqa.cli.probe."""

from medqa.cli.probe import cli

if __name__ == "__main__":
    cli()
