"""The Optuna engine: its adapter (ask/tell), its storage, its mapping of the space DSL."""
