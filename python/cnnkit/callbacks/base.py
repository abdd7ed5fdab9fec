"""Callback, the base of every hook into fit/evaluate/predict, and CallbackList, which calls
them in turn (as keras.callbacks.Callback and CallbackList).

Hooks receive Keras' arguments: epochs and batches are 0-based; `logs` is a dict of floats
(running means of the loss and metrics during an epoch; at its end, the epoch's values and the
val_ ones). As in Keras, on_train_batch_begin/end call on_batch_begin/end by default, so a
callback written for either name works.
"""

__all__ = ["Callback", "CallbackList"]


class Callback:
    def __init__(self):
        self.model, self.params = None, {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_batch_begin(self, batch, logs=None): pass
    def on_batch_end(self, batch, logs=None): pass
    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)  # Keras' alias

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)

    def on_test_begin(self, logs=None): pass
    def on_test_end(self, logs=None): pass
    def on_test_batch_begin(self, batch, logs=None): pass
    def on_test_batch_end(self, batch, logs=None): pass
    def on_predict_begin(self, logs=None): pass
    def on_predict_end(self, logs=None): pass
    def on_predict_batch_begin(self, batch, logs=None): pass
    def on_predict_batch_end(self, batch, logs=None): pass


class CallbackList(Callback):
    """Calls each hook on every callback in turn; adds History and the progress bar as Keras'
    fit does. Each hook gets its own copy of the logs, as in Keras: a callback that adds a key
    (ReduceLROnPlateau's 'learning_rate') shows it to the callbacks after it (History, the
    progress bar), never to the trainer's own dict."""

    def __init__(self, callbacks=None, add_history=False, add_progbar=False, model=None, **params):
        from .history import History, ProgbarLogger  # they subclass Callback: imported late
        super().__init__()
        if isinstance(callbacks, Callback):
            raise TypeError("callbacks must be a list of Callback objects, e.g. callbacks=[cb]")
        self.callbacks = list(callbacks or [])
        for c in self.callbacks:
            if not isinstance(c, Callback):
                raise TypeError(f"callbacks must be a list of cnnkit.callbacks.Callback objects, "
                                f"got {type(c).__name__} ({c!r})")
        self.history = None
        if add_history:
            self.history = next((c for c in self.callbacks if isinstance(c, History)), None)
            if self.history is None:
                self.history = History()
                self.callbacks.append(self.history)
        if add_progbar and not any(isinstance(c, ProgbarLogger) for c in self.callbacks):
            self.callbacks.append(ProgbarLogger())
        if model is not None:
            self.set_model(model)
        self.set_params(params)

    def set_model(self, model):
        super().set_model(model)
        for c in self.callbacks:
            c.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        for c in self.callbacks:
            c.set_params(params)


def _forward(hook):
    if hook.endswith(("_batch_begin", "_batch_end")):
        def call(self, batch, logs=None):
            logs = dict(logs) if logs else {}
            for c in self.callbacks:
                getattr(c, hook)(batch, logs=logs)  # logs by keyword, as Keras calls them
    elif hook.startswith("on_epoch_"):
        def call(self, epoch, logs=None):
            logs = dict(logs) if logs else {}
            for c in self.callbacks:
                getattr(c, hook)(epoch, logs)
    else:
        def call(self, logs=None):
            logs = dict(logs) if logs else {}
            for c in self.callbacks:
                getattr(c, hook)(logs)
    call.__name__ = hook
    return call


for _hook in [h for h in vars(Callback) if h.startswith("on_")]:
    setattr(CallbackList, _hook, _forward(_hook))
