"""A trained trial, after the search: its model rebuilt from its best checkpoint, evaluated on a
test folder, exported as a .keras file, and predicting images.

Import the modules themselves; each loads Keras only where it needs it."""
