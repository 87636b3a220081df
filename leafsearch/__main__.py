"""`python -m leafsearch` is the `leafsearch` command."""

from leafsearch.cli.main import entry_point

entry_point()
