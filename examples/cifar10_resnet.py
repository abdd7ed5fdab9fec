"""The CIFAR-10 ResNet of keras.io ("Trains a ResNet on the CIFAR10 dataset", ResNet v1 of
depth 20), written as that example writes its model and its training, with cnnkit in place of
keras.

    python examples/cifar10_resnet.py

Each residual block is Conv2D-BatchNormalization-ReLU-Conv2D-BatchNormalization, added to its
input (through a strided 1x1 Conv2D where the image halves), then ReLU; the kernels are
he_normal with an L2 penalty of 1e-4, as in the example. Three stages of three blocks (16, 32
and 64 filters), then AveragePooling2D(8), Flatten and a softmax Dense layer: 274,442
parameters, as Keras counts them (the BatchNormalization moving statistics included). Trained
as the example trains it: Adam with its step schedule (LearningRateScheduler), ReduceLROnPlateau
and a ModelCheckpoint keeping the best model by validation accuracy. What differs from the
keras.io example: its ImageDataGenerator (shifts of 10% and horizontal flips) is Keras 3's
RandomFlip and RandomTranslation layers at the model's input, which train only, and the default
is 3 epochs (the example trains 200). CIFAR-10 is read from $CNNKIT_DATA or
~/.cnnkit/datasets, or downloaded there.
"""
import os

import numpy as np

import cnnkit as keras
from cnnkit.callbacks import LearningRateScheduler, ModelCheckpoint, ReduceLROnPlateau
from cnnkit.datasets import cifar10
from cnnkit.layers import (Activation, AveragePooling2D, BatchNormalization, Conv2D, Dense,
                           Flatten, Input, RandomFlip, RandomTranslation)
from cnnkit.models import Model
from cnnkit.optimizers import Adam
from cnnkit.regularizers import l2

epochs = 3
batch_size = 32
num_classes = 10

(x_train, y_train), (x_test, y_test) = cifar10.load_data()
x_train = x_train.astype("float32") / 255
x_test = x_test.astype("float32") / 255
x_train_mean = x_train.mean(axis=0)  # subtract the pixel mean, as the example does
x_train -= x_train_mean
x_test -= x_train_mean
y_train = keras.utils.to_categorical(y_train, num_classes)
y_test = keras.utils.to_categorical(y_test, num_classes)


def resnet_layer(inputs, num_filters=16, kernel_size=3, strides=1, activation="relu",
                 batch_normalization=True):
    conv = Conv2D(num_filters, kernel_size=kernel_size, strides=strides, padding="same",
                  kernel_initializer="he_normal", kernel_regularizer=l2(1e-4))
    x = conv(inputs)
    if batch_normalization:
        x = BatchNormalization()(x)
    if activation is not None:
        x = Activation(activation)(x)
    return x


def resnet_v1(input_shape, depth, num_classes=10):
    num_filters = 16
    num_res_blocks = (depth - 2) // 6
    inputs = Input(shape=input_shape)
    augmented = RandomTranslation(0.1, 0.1)(RandomFlip("horizontal")(inputs))
    x = resnet_layer(inputs=augmented)
    for stack in range(3):
        for res_block in range(num_res_blocks):
            strides = 2 if stack > 0 and res_block == 0 else 1
            y = resnet_layer(inputs=x, num_filters=num_filters, strides=strides)
            y = resnet_layer(inputs=y, num_filters=num_filters, activation=None)
            if stack > 0 and res_block == 0:  # the shortcut matches the halved image
                x = resnet_layer(inputs=x, num_filters=num_filters, kernel_size=1,
                                 strides=strides, activation=None, batch_normalization=False)
            x = keras.layers.add([x, y])
            x = Activation("relu")(x)
        num_filters *= 2
    x = AveragePooling2D(pool_size=8)(x)
    y = Flatten()(x)
    outputs = Dense(num_classes, activation="softmax", kernel_initializer="he_normal")(y)
    return Model(inputs=inputs, outputs=outputs)


def lr_schedule(epoch):
    """The example's steps: 1e-3, divided by 10 after epochs 80, 120 and 160, and by 2 more
    after 180."""
    lr = 1e-3
    if epoch > 180:
        lr *= 0.5e-3
    elif epoch > 160:
        lr *= 1e-3
    elif epoch > 120:
        lr *= 1e-2
    elif epoch > 80:
        lr *= 1e-1
    return lr


model = resnet_v1(input_shape=x_train.shape[1:], depth=20)
model.compile(loss="categorical_crossentropy", optimizer=Adam(learning_rate=lr_schedule(0)),
              metrics=["accuracy"])
model.summary()

save_dir = os.path.join(os.getcwd(), "saved_models")
os.makedirs(save_dir, exist_ok=True)
filepath = os.path.join(save_dir, "cifar10_ResNet20v1_model.{epoch:03d}.keras")
checkpoint = ModelCheckpoint(filepath=filepath, monitor="val_accuracy", verbose=1,
                             save_best_only=True)
lr_scheduler = LearningRateScheduler(lr_schedule)
lr_reducer = ReduceLROnPlateau(factor=np.sqrt(0.1), cooldown=0, patience=5, min_lr=0.5e-6)
callbacks = [checkpoint, lr_reducer, lr_scheduler]

history = model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs,
                    validation_data=(x_test, y_test), shuffle=True, callbacks=callbacks)
scores = model.evaluate(x_test, y_test, verbose=1)
print("Test loss:", scores[0])
print("Test accuracy:", scores[1])
