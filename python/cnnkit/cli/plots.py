"""The training report figure: loss and accuracy curves per epoch, and a confusion matrix.

matplotlib is an optional extra (`pip install cnnkit[plot]`), imported only here and only when a
plot is asked for; `require_matplotlib` lets a command fail before hours of training, not after.
The figure is drawn with matplotlib's object API (no pyplot), so no display or GUI backend is
touched and nothing global changes.
"""
import numpy as np

INSTALL_HINT = "pip install 'cnnkit[plot]'"


def require_matplotlib():
    """None if matplotlib can be imported, else a message saying how to install it."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return f"--plot needs matplotlib, which is not installed: {INSTALL_HINT}"
    return None


def confusion_matrix(true_labels, predicted_labels, num_classes):
    """counts[i, j]: how many images of class i were predicted as class j."""
    flat = np.asarray(true_labels, np.int64).ravel() * num_classes + np.asarray(predicted_labels, np.int64).ravel()
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def save_training_report(file, history, confusion, class_names, title="", held_out="test"):
    """Writes a PNG: loss and accuracy of every epoch (training, and validation when `history`
    has val_* entries) beside the confusion matrix of the held-out images. `history` is
    History.history; `held_out` names what the val_* entries and the matrix measure."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(16, 5), layout="constrained")
    loss_axes, accuracy_axes, confusion_axes = figure.subplots(1, 3, width_ratios=[1, 1, 1.2])
    for axes, metric, label in [(loss_axes, "loss", "Loss"), (accuracy_axes, "accuracy", "Accuracy")]:
        for key, name in [(metric, "training"), (f"val_{metric}", held_out)]:
            if key in history:
                values = history[key]
                axes.plot(range(1, len(values) + 1), values, marker="o", label=name)
        axes.set(xlabel="epoch", ylabel=label.lower(), title=label)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        axes.legend()

    image = confusion_axes.imshow(confusion, cmap="Blues")
    figure.colorbar(image, ax=confusion_axes, shrink=0.8)
    ticks = range(len(class_names))
    confusion_axes.set_xticks(ticks, class_names, rotation=45, ha="right")
    confusion_axes.set_yticks(ticks, class_names)
    confusion_axes.set(xlabel="predicted", ylabel="true",
                       title=f"{held_out.capitalize()} confusion matrix (accuracy {np.trace(confusion) / max(confusion.sum(), 1):.3f})")
    dark = confusion.max() / 2
    for (row, col), count in np.ndenumerate(confusion):
        confusion_axes.text(col, row, str(count), ha="center", va="center", fontsize=7,
                            color="white" if count > dark else "black")
    if title:
        figure.suptitle(title)
    figure.savefig(file, dpi=100)
