"""`python -m medqa.score`. Score answers without a model: medqa.cli.score."""

from medqa.cli.score import cli

if __name__ == "__main__":
    cli()
