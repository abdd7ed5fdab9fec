"""The denoising autoencoder of TensorFlow's "Intro to Autoencoders" tutorial
(tensorflow.org/tutorials/generative/autoencoder, second example), written as the tutorial
writes it (a subclassed Model of two Sequential halves, Conv2DTranspose in the decoder) with
cnnkit in place of TensorFlow.

    python examples/denoising_autoencoder.py

What differs from the tutorial: CIFAR-10 colour images (32x32x3) instead of Fashion-MNIST
(28x28x1), so the last convolution has 3 filters; the noise comes from NumPy instead of
tf.random.normal; calling a model on an array gives a NumPy array, so the tutorial's .numpy()
goes; a default of 3 epochs (the tutorial trains 10); the test images' mean squared error,
noisy and denoised, is printed instead of plotted. The model learns to map noisy
images (Gaussian noise of standard deviation 0.2, clipped to [0, 1]) back to the clean ones.
CIFAR-10 is read from $CNNKIT_DATA or ~/.cnnkit/datasets, or downloaded there.
"""
import numpy as np

import cnnkit as keras
from cnnkit import layers, losses
from cnnkit.datasets import cifar10
from cnnkit.models import Model

epochs = 3

(x_train, _), (x_test, _) = cifar10.load_data()
x_train = x_train.astype("float32") / 255.
x_test = x_test.astype("float32") / 255.

noise_factor = 0.2
rng = np.random.default_rng(0)
x_train_noisy = x_train + noise_factor * rng.standard_normal(x_train.shape, dtype=np.float32)
x_test_noisy = x_test + noise_factor * rng.standard_normal(x_test.shape, dtype=np.float32)
x_train_noisy = np.clip(x_train_noisy, 0., 1.)
x_test_noisy = np.clip(x_test_noisy, 0., 1.)


class Denoise(Model):
    def __init__(self):
        super().__init__()
        self.encoder = keras.Sequential([
            layers.Input(shape=(32, 32, 3)),
            layers.Conv2D(16, (3, 3), activation="relu", padding="same", strides=2),
            layers.Conv2D(8, (3, 3), activation="relu", padding="same", strides=2)])
        self.decoder = keras.Sequential([
            layers.Conv2DTranspose(8, kernel_size=3, strides=2, activation="relu", padding="same"),
            layers.Conv2DTranspose(16, kernel_size=3, strides=2, activation="relu", padding="same"),
            layers.Conv2D(3, kernel_size=(3, 3), activation="sigmoid", padding="same")])

    def call(self, x):
        encoded = self.encoder(x)
        decoded = self.decoder(encoded)
        return decoded


autoencoder = Denoise()
autoencoder.compile(optimizer="adam", loss=losses.MeanSquaredError())
history = autoencoder.fit(x_train_noisy, x_train, epochs=epochs, shuffle=True,
                          validation_data=(x_test_noisy, x_test))
autoencoder.encoder.summary()
autoencoder.decoder.summary()

encoded_imgs = autoencoder.encoder(x_test_noisy)  # a NumPy array already: no .numpy()
decoded_imgs = autoencoder.predict(x_test_noisy)
noisy_mse = float(np.mean((x_test_noisy - x_test) ** 2))
denoised_mse = float(np.mean((decoded_imgs - x_test) ** 2))
print(f"Test MSE: noisy {noisy_mse:.5f}, denoised {denoised_mse:.5f}")
