"""`python -m medqa.data`. Preview a data mix: medqa.cli.data."""

# The one import from this layer up to medqa.cli: a command's entry shim (allowed in pyproject.toml).

from medqa.cli.data import cli

cli()
