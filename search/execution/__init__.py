"""Running trials: a child process per trial (fork server), the out-of-memory retry, process liveness."""
