"""The Keras models a trial trains: the CNN, EfficientNet, their augmentation layers, and what a
model costs (parameters, FLOPs, inference time)."""
