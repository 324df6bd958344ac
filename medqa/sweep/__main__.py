"""`python -m medqa.sweep`. Run a sweep file offline: medqa.cli.sweep."""

# The one import from this layer up to medqa.cli: a command's entry shim (allowed in pyproject.toml).

from medqa.cli.sweep import cli

cli()
