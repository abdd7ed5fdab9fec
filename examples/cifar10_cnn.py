"""The classic Keras CIFAR-10 CNN, unchanged but for the imports (cnnkit instead of keras).

    python examples/cifar10_cnn.py

CIFAR-10 is read from $CNNKIT_DATA or ~/.cnnkit/datasets, or downloaded there (170 MB). Keras
reaches about two thirds test accuracy with this model in ten epochs. `python -m cnnkit
train-cifar10` runs the same model with timings, a saved model and an optional plot.
"""
from cnnkit.datasets import cifar10
from cnnkit.models import Sequential
from cnnkit.layers import Conv2D, MaxPooling2D, Flatten, Dense
from cnnkit.utils import to_categorical

(x_train, y_train), (x_test, y_test) = cifar10.load_data()
x_train = x_train / 255.0
x_test = x_test / 255.0
y_train = to_categorical(y_train)
y_test = to_categorical(y_test)

model = Sequential()
model.add(Conv2D(32, (3, 3), activation='relu', input_shape=(32, 32, 3)))
model.add(MaxPooling2D((2, 2)))
model.add(Conv2D(64, (3, 3), activation='relu'))
model.add(MaxPooling2D((2, 2)))
model.add(Flatten())
model.add(Dense(128, activation='relu'))
model.add(Dense(10, activation='softmax'))
model.compile(optimizer='adam', loss='categorical_crossentropy', metrics=['accuracy'])
model.fit(x_train, y_train, epochs=10, batch_size=64)
loss, accuracy = model.evaluate(x_test, y_test)
print('Test accuracy:', accuracy)
