"""The "toy ResNet model" for CIFAR-10 from the Keras functional API guide
(https://keras.io/guides/functional_api/, "A toy ResNet model"), written as the guide writes it
with only the imports changed (cnnkit instead of keras).

    python examples/residual_classifier.py

A functional model whose graph is not a stack: two residual blocks, each adding its input back
to the output of two convolutions with layers.add; 223,242 parameters, as in the guide. What
differs from the guide:
  - keras.utils.plot_model is left out (no plotting of graphs in cnnkit);
  - the fit's History is kept and the model is evaluated on the test images at the end.
As in the guide, training runs on the first 1,000 training images only (800 train, 200 held
out by validation_split=0.2) for one epoch, so expect little more than chance: train on all
of x_train for several epochs to see the model learn. CIFAR-10 is read from $CNNKIT_DATA or
~/.cnnkit/datasets, or downloaded there.
"""
import cnnkit as keras
from cnnkit import layers

inputs = keras.Input(shape=(32, 32, 3), name="img")
x = layers.Conv2D(32, 3, activation="relu")(inputs)
x = layers.Conv2D(64, 3, activation="relu")(x)
block_1_output = layers.MaxPooling2D(3)(x)

x = layers.Conv2D(64, 3, activation="relu", padding="same")(block_1_output)
x = layers.Conv2D(64, 3, activation="relu", padding="same")(x)
block_2_output = layers.add([x, block_1_output])

x = layers.Conv2D(64, 3, activation="relu", padding="same")(block_2_output)
x = layers.Conv2D(64, 3, activation="relu", padding="same")(x)
block_3_output = layers.add([x, block_2_output])

x = layers.Conv2D(64, 3, activation="relu")(block_3_output)
x = layers.GlobalAveragePooling2D()(x)
x = layers.Dense(256, activation="relu")(x)
x = layers.Dropout(0.5)(x)
outputs = layers.Dense(10)(x)

model = keras.Model(inputs, outputs, name="toy_resnet")
model.summary()

(x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()

x_train = x_train.astype("float32") / 255.0
x_test = x_test.astype("float32") / 255.0
y_train = keras.utils.to_categorical(y_train, 10)
y_test = keras.utils.to_categorical(y_test, 10)

model.compile(
    optimizer=keras.optimizers.RMSprop(1e-3),
    loss=keras.losses.CategoricalCrossentropy(from_logits=True),
    metrics=["acc"],
)
# We restrict the data to the first 1000 samples so as to limit execution time.
# Try to train on the entire dataset until convergence!
history = model.fit(
    x_train[:1000],
    y_train[:1000],
    batch_size=64,
    epochs=1,
    validation_split=0.2,
)
print("History keys:", sorted(history.history))

test_loss, test_acc = model.evaluate(x_test, y_test, verbose=2)
print("Test accuracy:", test_acc)
