"""`python -m medqa.compare`. Compare finished runs: medqa.cli.compare."""

from medqa.cli.compare import cli

if __name__ == "__main__":
    cli()
