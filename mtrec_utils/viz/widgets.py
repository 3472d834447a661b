"""Interactive widgets for the notebooks (ipywidgets), each with a static fallback.

Notebook 01's task-weight slider: the weight ``w_1`` of task 1 (``w_2 = 1 - w_1``) moves the
minimiser of ``w_1 L_1 + w_2 L_2`` along the toy problem's Pareto front, and the arrows show the
two task gradients and their weighted sum at the starting point. Without a front end (papermill,
CI) no widget is rendered, so notebooks also draw :func:`draw_task_weight` statically.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from matplotlib.figure import Figure

from mtrec_utils.analyses.joint_loss.toy import ToyProblem, combined_gradient, plot_front, plot_landscape


def draw_task_weight(
    problem: ToyProblem, weights: float | Sequence[float], figure: Figure | None = None
) -> Figure:
    """Draw the Pareto points for one or more task-1 weights, with the gradient arrows of the first.

    Args:
        problem: the toy problem.
        weights: task-1 weight(s) ``w_1`` in [0, 1].
        figure: a Figure to draw into (cleared first), or ``None`` for a new one.

    Returns:
        The Figure: parameter space on the left, loss space on the right.
    """
    weights = [float(weights)] if isinstance(weights, (int, float)) else [float(w) for w in weights]
    fig = figure if figure is not None else Figure(figsize=(11, 4.6))
    fig.clear()
    ax_theta, ax_loss = fig.subplots(1, 2)
    plot_landscape(problem, ax=ax_theta)
    plot_front(problem, ax=ax_loss)
    start = problem.start
    ax_theta.plot(*start.tolist(), "ks", ms=6, label="start")
    g1, g2, g = combined_gradient(problem, start, weights[0])
    arrows = (
        (g, "gray", 4, "$-$combined"),
        (g1, "tab:blue", 2, r"$-\nabla L_1$"),
        (g2, "tab:orange", 2, r"$-\nabla L_2$"),
    )
    for vec, color, width, label in arrows:  # directions only: every arrow is drawn 0.7 long
        tip = start - 0.7 * vec / vec.norm().clamp_min(1e-12)
        props = dict(arrowstyle="->", color=color, lw=width)
        ax_theta.annotate("", xy=tip.tolist(), xytext=start.tolist(), arrowprops=props)
        ax_theta.plot([], [], color=color, lw=width, label=label)
    for w, color in zip(weights, ("tab:purple", "tab:green", "tab:red", "tab:brown", "tab:pink")):
        theta = problem.pareto_point(w)
        losses = problem.losses(theta)
        ax_theta.plot(
            *theta.tolist(), "D", ms=9, color=color, mec="black", label=f"optimum for $w_1$={w:.2f}"
        )
        ax_loss.plot(*losses.tolist(), "D", ms=9, color=color, mec="black", label=f"$w_1$={w:.2f}")
    ax_theta.legend(fontsize=7, loc="upper left")
    ax_loss.legend(fontsize=8)
    fig.suptitle(
        rf"minimiser of $w_1 L_1 + (1-w_1) L_2$; arrows: descent directions (not lengths) at the start ($w_1$={weights[0]:.2f})"
    )
    fig.tight_layout()
    return fig


class TaskWeightSlider:
    """A slider for ``w_1`` that redraws :func:`draw_task_weight` (display it with ``display(s.widget)``).

    The figure is shown as a PNG in an ``Image`` widget (a plain widget-state update), not through an
    ``Output`` widget, whose captured outputs can stall headless executors such as papermill.

    Attributes:
        slider: the ``FloatSlider`` (0..1).
        image: the ``Image`` widget holding the current figure as PNG bytes.
        widget: the ``VBox`` to display.
        point: ``(2,)`` current Pareto point in parameter space; ``losses``: ``(2,)`` its losses.
        figure: the matplotlib Figure last drawn.
    """

    def __init__(self, problem: ToyProblem | None = None, weight: float = 0.5) -> None:
        import ipywidgets as widgets

        self.problem = problem or ToyProblem()
        self.slider = widgets.FloatSlider(
            value=weight,
            min=0.0,
            max=1.0,
            step=0.01,
            description="w1 (task 1)",
            readout_format=".2f",
            continuous_update=False,
            style={"description_width": "initial"},
        )
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="1000px"))
        self.widget = widgets.VBox([self.slider, self.image])
        self.figure = Figure(figsize=(11, 4.6))
        self.slider.observe(lambda change: self.update(change["new"]), names="value")
        self.update(weight)

    def update(self, weight: float) -> None:
        """Move to task-1 weight ``weight``: recompute the point and redraw the figure."""
        self.point = self.problem.pareto_point(weight)
        self.losses = self.problem.losses(self.point)
        draw_task_weight(self.problem, weight, self.figure)
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=80)
        self.image.value = buffer.getvalue()


class EmbeddingExplorer:
    """Pick a movie from a dropdown; see its nearest neighbours in two spaces side by side.

    Typically the raw pretrained encoder's item embeddings against the item tower after joint
    training (notebook 05). The tables are HTML in an ``HTML`` widget (never an ``Output`` widget);
    headless, :meth:`static` gives the same tables as a plain ``IPython.display.HTML``.

    Args:
        titles: (N,) item titles (the dropdown's options).
        spaces: ``{space name: (N, H) vectors}``, e.g. ``{"pretrained": raw, "joint": tower}``.
        k: neighbours shown per space.
        start: title shown first (default: the first title).

    Attributes:
        dropdown: the ``Dropdown``; html: the ``HTML`` widget; widget: the ``VBox`` to display.
        neighbours: ``{space name: [(title, cosine), ...]}`` for the current movie.
    """

    def __init__(self, titles, spaces: dict, k: int = 8, start: str | None = None) -> None:
        import ipywidgets as widgets

        self.titles = [str(t) for t in titles]
        if not spaces or any(len(v) != len(self.titles) for v in spaces.values()):
            raise ValueError(
                f"spaces must be a non-empty dict of ({len(self.titles)}, H) tensors, one row per title"
            )
        if start is not None and start not in self.titles:
            raise ValueError(f"start={start!r} is not one of the titles")
        self.spaces, self.k = spaces, k
        first = self.titles.index(start) if start is not None else 0
        options = sorted(((t, j) for j, t in enumerate(self.titles)), key=lambda o: o[0].lower())
        self.dropdown = widgets.Dropdown(
            options=options, value=first, description="movie", layout=widgets.Layout(width="420px")
        )
        self.html = widgets.HTML()
        self.widget = widgets.VBox([self.dropdown, self.html])
        self.dropdown.observe(lambda change: self.update(change["new"]), names="value")
        self.update(first)

    def update(self, index: int) -> None:
        """Show the neighbours of item ``index``."""
        from html import escape

        from mtrec_utils.core.similarity import cosine_top_k

        self.index = int(index)
        self.neighbours = {}
        for name, vecs in self.spaces.items():
            idx, sims = cosine_top_k(vecs[self.index], vecs, k=self.k, exclude=self.index)
            self.neighbours[name] = [(self.titles[j], float(s)) for j, s in zip(idx.tolist(), sims.tolist())]
        head = "".join(f"<th>{escape(n)}</th>" for n in self.spaces)
        columns = list(self.neighbours.values())
        rows = "".join(
            "<tr>" + "".join(f"<td>{escape(t)} ({s:.2f})</td>" for t, s in (v[r] for v in columns)) + "</tr>"
            for r in range(self.k)
        )
        self.html.value = (
            f"<b>Nearest neighbours of {escape(self.titles[self.index])}</b> (cosine)"
            f"<table><tr>{head}</tr>{rows}</table>"
        )

    def static(self):
        """The current tables as ``IPython.display.HTML`` (for headless runs and exported notebooks)."""
        from IPython.display import HTML

        return HTML(self.html.value)
