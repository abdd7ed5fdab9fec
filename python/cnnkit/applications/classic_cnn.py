"""classic_cnn: the classic Keras CIFAR-10 CNN (the Keras example the README starts from),
compiled as that example compiles it: Adam, categorical cross-entropy, accuracy.

  Conv2D(32, 3, relu) - MaxPooling2D(2) - Conv2D(64, 3, relu) - MaxPooling2D(2) - Flatten -
  Dense(128, relu) - Dense(10, softmax): 315,722 parameters, as in Keras.
"""
from ..engine.sequential import Sequential
from ..layers import Conv2D, Dense, Flatten, MaxPooling2D

__all__ = ["classic_cnn"]


def classic_cnn(input_shape=(32, 32, 3), classes=10, compile=True):
    model = Sequential()
    model.add(Conv2D(32, (3, 3), activation="relu", input_shape=tuple(input_shape)))
    model.add(MaxPooling2D((2, 2)))
    model.add(Conv2D(64, (3, 3), activation="relu"))
    model.add(MaxPooling2D((2, 2)))
    model.add(Flatten())
    model.add(Dense(128, activation="relu"))
    model.add(Dense(classes, activation="softmax"))
    if compile:
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model
