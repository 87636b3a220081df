"""The `leafsearch` command line (main.py): the only place that prints or exits."""
