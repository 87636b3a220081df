"""The environment variables the command line reads, named once."""

STORAGE_VARIABLE = "LEAFSEARCH_STORAGE"  # the storage URL, when it should not show in `ps`
WORKER_INDEX = "LEAFSEARCH_WORKER"  # set in the processes `--workers N` starts: their index
