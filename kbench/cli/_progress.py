"""Rich progress bars: of a training run (driven by a Keras callback) and of an A/B run."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from kbench.cli._common import say
from kbench.cli._tables import metric


def progress_bar(console: Console, *fields: str) -> Progress:
    """A bar with its description, n of m, the task's ``fields`` and the elapsed time."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    *(TextColumn(f"{{task.fields[{field}]}}") for field in fields),
                    TimeElapsedColumn(), console=console)


def keras_progress(progress: Progress):
    """A Keras callback that drives ``progress``: one bar per epoch, in steps, with the loss.

    ``progress`` needs a ``loss`` field (``progress_bar(console, "loss")``).
    """
    import keras  # only `kbench run` needs Keras

    class RichProgress(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.task = progress.add_task("training", total=None, loss="")

        def on_epoch_begin(self, epoch, logs=None):
            progress.reset(self.task, total=self.params.get("steps"),
                           description=f"epoch {epoch + 1}/{self.params.get('epochs')}", loss="")

        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            progress.update(self.task, advance=1,
                            loss="" if loss is None else f"loss {metric(loss)}")

        def on_epoch_end(self, epoch, logs=None):
            shown = ", ".join(f"{k} {metric(v)}" for k, v in sorted((logs or {}).items()))
            say(progress.console, f"epoch {epoch + 1}: {shown}")

    return RichProgress()
