"""A model of two inputs and two outputs, written as a Keras user writes one with the functional
API (https://keras.io/guides/functional_api/, "Models with multiple inputs and outputs" and
"Shared layers"), with only the imports changed (cnnkit instead of keras).

    python examples/two_input_model.py

A siamese network on pairs of CIFAR-10 images: one encoder (a Sequential model) is called on
both images, so both go through the same layers and the same weights, and every update of the
encoder comes from both branches. From the two codes the model predicts
  "same_class": whether the two images show the same class (Dense(1, sigmoid) on the
                concatenated codes), and
  "class_a":    the class of the first image (Dense(10, softmax) on its code alone).
It is compiled with a loss, a loss weight and metrics per output (dicts by output name), fitted
with x=[images_a, images_b] and y a dict, and the History and evaluate() name everything as
Keras does: loss, same_class_loss, class_a_loss, same_class_accuracy, class_a_accuracy (and
val_ ones). Half the pairs are of the same class, so chance is 0.5 for same_class, 0.1 for
class_a. The pairs are made with NumPy: nothing here differs from Keras but the imports.
CIFAR-10 is read from $CNNKIT_DATA or ~/.cnnkit/datasets, or downloaded there.
"""
import numpy as np

import cnnkit as keras
from cnnkit import layers


def make_pairs(images, labels, rng):
    """Each image with a partner image: of the same class for half of them (chosen at random),
    of another class for the rest. Returns images_a, images_b, same_class (0/1), labels of a."""
    labels = labels.ravel()
    same = rng.random(len(labels)) < 0.5
    partner_class = np.where(same, labels, (labels + rng.integers(1, 10, len(labels))) % 10)
    # A random image of each partner class: the images sorted by class, and an offset into the
    # block of that class.
    by_class = np.argsort(labels, kind="stable")
    counts = np.bincount(labels, minlength=10)
    starts = np.cumsum(counts) - counts
    partners = by_class[starts[partner_class] + rng.integers(0, counts[partner_class])]
    return images, images[partners], same.astype("float32")[:, None], labels


(x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
x_train = x_train.astype("float32") / 255.0
x_test = x_test.astype("float32") / 255.0

rng = np.random.default_rng(1337)
train_a, train_b, train_same, train_class = make_pairs(x_train, y_train, rng)
test_a, test_b, test_same, test_class = make_pairs(x_test, y_test, rng)

# The shared encoder: one set of weights for both images.
encoder = keras.Sequential(
    [
        keras.Input(shape=(32, 32, 3)),
        layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
    ],
    name="encoder",
)

image_a = keras.Input(shape=(32, 32, 3), name="image_a")
image_b = keras.Input(shape=(32, 32, 3), name="image_b")
code_a = encoder(image_a)
code_b = encoder(image_b)

merged = layers.concatenate([code_a, code_b])
x = layers.Dense(64, activation="relu")(merged)
same_class = layers.Dense(1, activation="sigmoid", name="same_class")(x)
class_a = layers.Dense(10, activation="softmax", name="class_a")(code_a)

model = keras.Model(
    inputs=[image_a, image_b],
    outputs={"same_class": same_class, "class_a": class_a},
    name="siamese",
)
model.summary()

model.compile(
    optimizer=keras.optimizers.Adam(1e-3),
    loss={
        "same_class": "binary_crossentropy",
        "class_a": "sparse_categorical_crossentropy",
    },
    loss_weights={"same_class": 1.0, "class_a": 0.5},
    metrics={"same_class": ["accuracy"], "class_a": ["accuracy"]},
)

history = model.fit(
    x=[train_a, train_b],
    y={"same_class": train_same, "class_a": train_class},
    batch_size=64,
    epochs=3,
    validation_data=([test_a, test_b], {"same_class": test_same, "class_a": test_class}),
)
print("History keys:", sorted(history.history))

results = model.evaluate(
    [test_a, test_b],
    {"same_class": test_same, "class_a": test_class},
    verbose=0,
    return_dict=True,
)
print("Test:", {name: round(value, 4) for name, value in results.items()})

predictions = model.predict([test_a[:5], test_b[:5]])
print("Predicted P(same class) for 5 test pairs:", predictions["same_class"].ravel().round(2))
print("Truth:", test_same.ravel()[:5])
