"""Callbacks, as keras.callbacks: hooks into fit/evaluate/predict.

One module per family: base (Callback, CallbackList), history (History and the progress bar),
monitoring (EarlyStopping, ReduceLROnPlateau), checkpointing (ModelCheckpoint,
BackupAndRestore), csv_logger (CSVLogger), lr_scheduler (LearningRateScheduler), simple
(LambdaCallback, TerminateOnNaN) and lookahead (Lookahead, a cnnkit addition: airbench's
averaging of the weights).
"""
from .base import Callback, CallbackList
from .checkpointing import BackupAndRestore, FilepathTemplateError, ModelCheckpoint
from .csv_logger import CSVLogger
from .history import History, Progbar, ProgbarLogger
from .lookahead import Lookahead
from .lr_scheduler import LearningRateScheduler
from .monitoring import EarlyStopping, ReduceLROnPlateau
from .simple import LambdaCallback, TerminateOnNaN

__all__ = ["Callback", "CallbackList", "History", "ProgbarLogger", "Progbar", "EarlyStopping",
           "ReduceLROnPlateau", "ModelCheckpoint", "BackupAndRestore", "CSVLogger",
           "LearningRateScheduler", "LambdaCallback", "TerminateOnNaN", "FilepathTemplateError",
           "Lookahead"]
