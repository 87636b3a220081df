"""`python -m leafsearch` is the `leafsearch` command."""

from leafsearch.cli import entry_point

entry_point()
