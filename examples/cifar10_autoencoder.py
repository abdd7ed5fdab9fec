"""A convolutional autoencoder on CIFAR-10, written as Keras' autoencoder tutorials write it
(cnnkit instead of keras in the imports).

    python examples/cifar10_autoencoder.py

The encoder compresses a 32x32x3 image (3,072 values) to a code of 256; the decoder rebuilds the
image from the code. cnnkit.models.conv_autoencoder() returns these same three models, compiled
the same way; `python -m cnnkit train-autoencoder` trains them with timings, a saved model and a
PNG of reconstructions. CIFAR-10 is read from $CNNKIT_DATA or ~/.cnnkit/datasets, or downloaded.
"""
import numpy as np

from cnnkit.datasets import cifar10
from cnnkit.layers import Conv2D, Dense, Flatten, Input, MaxPooling2D, Reshape, UpSampling2D
from cnnkit.metrics import psnr
from cnnkit.models import Sequential
from cnnkit.optimizers import Adam

(x_train, _), (x_test, _) = cifar10.load_data()
x_train = x_train.astype('float32') / 255.0
x_test = x_test.astype('float32') / 255.0

encoder = Sequential([
    Input(shape=(32, 32, 3)),
    Conv2D(32, 3, padding='same', activation='relu'),
    MaxPooling2D(2),
    Conv2D(64, 3, padding='same', activation='relu'),
    MaxPooling2D(2),
    Flatten(),
    Dense(256),
], name='encoder')
decoder = Sequential([
    Input(shape=(256,)),
    Dense(8 * 8 * 64, activation='relu'),
    Reshape((8, 8, 64)),
    UpSampling2D(2),
    Conv2D(32, 3, padding='same', activation='relu'),
    UpSampling2D(2),
    Conv2D(3, 3, padding='same', activation='sigmoid'),
], name='decoder')
autoencoder = Sequential([encoder, decoder], name='autoencoder')
autoencoder.compile(optimizer=Adam(learning_rate=1e-3), loss='mse', metrics=['mse', 'psnr'])
autoencoder.summary()

autoencoder.fit(x_train, x_train, epochs=10, batch_size=64, shuffle=True,
                validation_data=(x_test, x_test))

# The halves share the autoencoder's trained weights.
codes = encoder.predict(x_test)
reconstructed = decoder.predict(codes)
print('Code shape:', codes.shape)
print('Test MSE:', np.mean((reconstructed - x_test) ** 2))
print('Test PSNR (dB, mean over images):', psnr(x_test, reconstructed))

autoencoder.save('cifar10_autoencoder.cnnkit')  # load_model(...).layers gives [encoder, decoder]
