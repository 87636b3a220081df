"""The KerasTuner engine: its adapter (over an Oracle), its mapping of the space DSL.

Nothing is imported here: the adapter loads KerasTuner, and with it Keras."""
