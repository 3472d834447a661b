"""A live view of joint training (notebook 04): each task's loss and weight, redrawn as training runs, and a
stop that ends training cleanly after the current step.

    view = LiveTrainingView(["rating", "like", "interest"])
    display(view.widget)
    result = view.train(run_experiment, bundle, task_names, epochs=10, ...)

``train`` passes the view's step log and epoch callback to ``run_experiment`` and runs it in the cell, so
"Run all" and papermill work as usual. The stop button is the notebook's own ■ (interrupt the kernel):
while ``train`` runs, an interrupt does not raise ``KeyboardInterrupt`` in the middle of a step, it asks
training to stop before the next one; that epoch is validated, ``fit`` restores (and keeps on disk) the
best epoch's weights, and the cells after it run as usual. (An ipywidgets button cannot do this: a
kernel handles widget clicks only between cells, and ipykernel 7 removed the hook that
``jupyter-ui-poll`` used to process them during one.) Outside the main thread interrupts are left alone.

The figure is a PNG in an ``Image`` widget, never drawn into an ``Output`` widget (whose captured output
can stall headless executors). Without a front end, :meth:`LiveTrainingView.figure` is the static picture.
"""

from __future__ import annotations

import io
import signal
import threading
from collections.abc import Callable, Sequence

import pandas as pd
from matplotlib.figure import Figure

from mtrec_utils.training.schedules import TrainingLog


def draw_training(figure: Figure, steps: pd.DataFrame, task_names: Sequence[str], window: int = 10) -> Figure:
    """Each task's loss (rolling mean over ``window`` steps) and weight against the step, into ``figure``."""
    figure.clear()
    ax_loss, ax_weight = figure.subplots(1, 2)
    for name in task_names:
        if f"loss/{name}" in steps:
            ax_loss.plot(
                steps["step"], steps[f"loss/{name}"].rolling(window, min_periods=1).mean(), label=name
            )
        if f"weight/{name}" in steps:
            ax_weight.plot(steps["step"], steps[f"weight/{name}"], label=name)
    ax_loss.set(xlabel="training step", ylabel=f"task loss (mean of {window} steps)", title="losses")
    ax_weight.set(xlabel="training step", ylabel="task weight", title="weights")
    for ax in (ax_loss, ax_weight):
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    figure.tight_layout()
    return figure


class LiveTrainingView:
    """Losses and weights redrawn every ``redraw_every`` steps; an interrupt (■) stops after the current step.

    Attributes:
        log: the :class:`~mtrec_utils.training.schedules.TrainingLog` training writes its steps into.
        status, image, widget: the ipywidgets parts (display ``widget``).
        stopped_at: the step at which a stop was honoured, or ``None``.
        figure: the last drawn matplotlib Figure.
    """

    def __init__(self, task_names: Sequence[str], redraw_every: int = 10) -> None:
        import ipywidgets as widgets

        self.task_names, self.redraw_every = list(task_names), max(1, int(redraw_every))
        self.log = TrainingLog(on_step=self._on_step, stop=self._should_stop)
        self.stop_requested, self.stopped_at = False, None
        self.status = widgets.HTML("not started")
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="900px"))
        self.widget = widgets.VBox([self.status, self.image])
        self.figure = Figure(figsize=(10, 3.4))

    def request_stop(self, *_) -> None:
        """Ask training to stop after the step it is in (what an interrupt does during :meth:`train`)."""
        self.stop_requested = True  # only a flag: this may run inside a signal handler

    def _should_stop(self) -> bool:
        if self.stop_requested and self.stopped_at is None:
            self.stopped_at = self.log.rows[-1]["step"] if self.log.rows else -1
            self.status.value = (
                f"stopping after step {self.stopped_at}: validating, restoring the best epoch ..."
            )
        return self.stop_requested

    def _on_step(self, row: dict) -> None:
        if row["step"] % self.redraw_every == 0:
            self.redraw()

    def on_epoch(self, history: pd.DataFrame) -> bool:
        """``fit`` callback: redraw with the epoch's numbers; True (stop) once a stop was requested."""
        last = history.iloc[-1]
        vals = ", ".join(f"{k[4:]} {v:.4f}" for k, v in last.items() if str(k).startswith("val/"))
        self.status.value = f"epoch {int(last['epoch'])}: {vals}"
        self.redraw()
        return self.stop_requested

    def redraw(self) -> None:
        """Draw the steps logged so far into the image."""
        steps = self.log.frame() if self.log.rows else pd.DataFrame({"step": []})
        draw_training(self.figure, steps, self.task_names)
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=80)
        self.image.value = buffer.getvalue()

    def train(self, run: Callable, *args, **kwargs):
        """Call ``run(*args, log=self.log, callbacks=[self.on_epoch], **kwargs)``; an interrupt stops it cleanly."""
        self.status.value = "training ... press ■ (interrupt the kernel) to stop after the current step"
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, self.request_stop) if main else None
        try:
            result = run(*args, log=self.log, callbacks=[self.on_epoch], **kwargs)
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
        done = f"stopped at step {self.stopped_at}" if self.stopped_at is not None else "finished"
        self.status.value = f"{done}; the best epoch's weights were restored"
        self.redraw()
        return result
