"""Keras' snake_case of a class name (keras.src.utils.naming.to_snake_case's rule), the one rule
behind automatic layer, metric and optimizer names, the string names of classes, and the keys of
Keras 3 weight files: 'Conv2D' -> 'conv2d', 'BatchNormalization' -> 'batch_normalization',
'RMSprop' -> 'rm_sprop', 'AdamW' -> 'adam_w'."""
import re


def snake_case(class_name):
    name = re.sub(r"\W+", "", class_name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()
