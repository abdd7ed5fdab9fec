"""A convolutional autoencoder as a functional model, written as Keras' tutorials write it with
only the imports changed (cnnkit instead of keras), on CIFAR-10 instead of MNIST.

    python examples/functional_autoencoder.py

The model is keras.io's "Convolutional autoencoder for image denoising"
(https://keras.io/examples/vision/autoencoder/): Input -> Conv2D -> MaxPooling2D -> ... built
with layer calls, `autoencoder = Model(input, x)` (imported from cnnkit.models as keras.io
imports it from keras.models), compiled with Adam and binary cross-entropy, and fitted to
reproduce its input. What differs:
  - the decoder upsamples with UpSampling2D followed by Conv2D, as in the convolutional
    autoencoder of the Keras blog's "Building Autoencoders in Keras", instead of keras.io's
    Conv2DTranspose(strides=2), which cnnkit does not have yet;
  - CIFAR-10's 32x32 colour images instead of MNIST's 28x28 digits (cnnkit has no MNIST loader
    yet): the input is (32, 32, 3), the last layer has 3 filters, and the code is 8x8x32;
  - no noise part and no matplotlib display: the script prints the reconstruction error
    (mean squared error and PSNR) on the test images instead; 5 epochs instead of 50.
CIFAR-10 is read from $CNNKIT_DATA or ~/.cnnkit/datasets, or downloaded there.
"""
import numpy as np

import cnnkit as keras
from cnnkit import layers
from cnnkit.models import Model

(x_train, _), (x_test, _) = keras.datasets.cifar10.load_data()
x_train = x_train.astype("float32") / 255.0
x_test = x_test.astype("float32") / 255.0

input = layers.Input(shape=(32, 32, 3))

# Encoder
x = layers.Conv2D(32, (3, 3), activation="relu", padding="same")(input)
x = layers.MaxPooling2D((2, 2), padding="same")(x)
x = layers.Conv2D(32, (3, 3), activation="relu", padding="same")(x)
x = layers.MaxPooling2D((2, 2), padding="same")(x)

# at this point the representation is (8, 8, 32), i.e. 2,048 values for 3,072 pixels

# Decoder
x = layers.Conv2D(32, (3, 3), activation="relu", padding="same")(x)
x = layers.UpSampling2D((2, 2))(x)
x = layers.Conv2D(32, (3, 3), activation="relu", padding="same")(x)
x = layers.UpSampling2D((2, 2))(x)
x = layers.Conv2D(3, (3, 3), activation="sigmoid", padding="same")(x)

# Autoencoder
autoencoder = Model(input, x)
autoencoder.compile(optimizer="adam", loss="binary_crossentropy")
autoencoder.summary()

history = autoencoder.fit(
    x=x_train,
    y=x_train,
    epochs=5,
    batch_size=128,
    shuffle=True,
    validation_data=(x_test, x_test),
)

predictions = autoencoder.predict(x_test)
print("Reconstructions:", predictions.shape, "values in", (predictions.min(), predictions.max()))
mse = np.mean((predictions - x_test) ** 2)
print("Test MSE:", mse)
print("Test PSNR (dB):", 10 * np.log10(1.0 / mse))
