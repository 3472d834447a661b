"""Widgets of the two case studies, each with a static form for headless runs.

- :class:`SimulatorControls` (notebook 06): sliders for the position-bias strength ``eta``, the click
  noise and the slate size regenerate a simulated ad log and redraw its click rate by position.
- :class:`UserRecommender` and :class:`RecommendForUser` (notebook 07): pick a MovieLens user and see
  their liked history, the joint model's top-10 with scores, and why (nearest liked item, and the
  share of each fused tower part in the score).

Pictures go into an ``Image`` widget and tables into an ``HTML`` widget: never an ``Output`` widget,
whose captured output can stall headless executors such as papermill.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from mtrec_utils.analyses.cases.personalization import part_attribution, recommend_table, top_k_items
from mtrec_utils.data.ads_sim import click_rate_by_position, examination_curve


def draw_click_curve(table: pd.DataFrame, eta: float, figure: Figure | None = None) -> Figure:
    """Observed click rate per position (±2 s.e.) against the examination curve ``(1/k)**eta``."""
    fig = figure if figure is not None else Figure(figsize=(6.5, 3.8))
    fig.clear()
    ax = fig.subplots()
    ax.errorbar(
        table.index, table["ctr"], yerr=2 * table["ctr_se"], fmt="o-", label="observed click rate (±2 s.e.)"
    )
    if "expected_ctr" in table:
        ax.plot(table.index, table["expected_ctr"], "k--", label="simulator's expected click rate")
    exam = examination_curve(len(table), eta)
    scale = float(table["ctr"].iloc[0]) / exam[0] if exam[0] > 0 else 1.0
    ax.plot(table.index, exam * scale, ":", color="tab:red", label=f"(1/k)^{eta:g}, scaled to position 1")
    ax.set(
        xlabel="position k (1 = top)",
        ylabel="click rate (clicks / impression)",
        title=f"{int(table['impressions'].sum()):,} impressions, eta = {eta:g}",
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


class SimulatorControls:
    """Sliders for ``eta``, click noise and slate size that re-simulate and redraw the click curve.

    Args:
        simulate: ``simulate(eta=, click_noise=, slate_size=) -> log`` (e.g. a ``functools.partial`` of
            :func:`~mtrec_utils.data.ads_sim.simulate_ad_log` with the data and a small ``num_slates``).
        eta, click_noise, slate_size: starting values.
    """

    def __init__(
        self,
        simulate: Callable[..., pd.DataFrame],
        eta: float = 1.0,
        click_noise: float = 0.1,
        slate_size: int = 10,
    ) -> None:
        import ipywidgets as widgets

        self.simulate = simulate
        on_release = {"continuous_update": False, "style": {"description_width": "initial"}}
        self.eta = widgets.FloatSlider(
            value=eta, min=0.0, max=2.0, step=0.1, description="eta (position bias)", **on_release
        )
        self.noise = widgets.FloatSlider(
            value=click_noise, min=0.0, max=0.5, step=0.05, description="click noise", **on_release
        )
        self.slate = widgets.IntSlider(
            value=slate_size, min=3, max=20, description="slate size", **on_release
        )
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="700px"))
        self.widget = widgets.VBox([widgets.HBox([self.eta, self.noise, self.slate]), self.image])
        self.figure = Figure(figsize=(6.5, 3.8))
        for control in (self.eta, self.noise, self.slate):
            control.observe(lambda _: self.update(), names="value")
        self.update()

    def update(self) -> pd.DataFrame:
        """Simulate with the current slider values, redraw, and return the click-rate table."""
        log = self.simulate(eta=self.eta.value, click_noise=self.noise.value, slate_size=self.slate.value)
        self.table = click_rate_by_position(log)
        draw_click_curve(self.table, self.eta.value, self.figure)
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=80)
        self.image.value = buffer.getvalue()
        return self.table


@dataclass
class UserRecommender:
    """What "recommend for user N" needs from a trained joint model (see :meth:`build`).

    Attributes:
        model: the joint model (with ``score_items``, ``towers["item"]``).
        user_ids, titles: MovieLens ids by row index, titles by item index.
        item_vectors: (num_items, d) item-tower outputs.
        liked: ``{user row: item indices liked in training}``.
        rated: ``{user row: item indices rated in training}`` (never recommended).
        task: the scoring task.
    """

    model: torch.nn.Module
    user_ids: np.ndarray
    titles: list[str]
    item_vectors: torch.Tensor
    liked: dict[int, np.ndarray]
    rated: dict[int, np.ndarray]
    task: str = "interest"

    @classmethod
    def build(
        cls,
        model,
        user_ids,
        titles: Sequence[str],
        train_user,
        train_item,
        train_like,
        rated_user=None,
        rated_item=None,
        task: str = "interest",
    ) -> UserRecommender:
        """From training rows given as user row indices, item indices and like labels (all (N,)).

        ``rated_user``/``rated_item`` (M,) are the pairs never to recommend (default: the training rows),
        e.g. the whole of u1.base when training used part of it.
        """
        model = model.cpu().eval()
        with torch.no_grad():
            vectors = model.towers["item"](torch.arange(len(titles)))  # (num_items, d)
        rows = {"u": train_user, "i": train_item, "like": train_like}
        frame = pd.DataFrame({k: np.asarray(v) for k, v in rows.items()})
        seen = (
            frame
            if rated_user is None
            else pd.DataFrame({"u": np.asarray(rated_user), "i": np.asarray(rated_item)})
        )
        rated = {int(u): g["i"].to_numpy().copy() for u, g in seen.groupby("u")}
        liked = {int(u): g["i"].to_numpy().copy() for u, g in frame[frame["like"] == 1].groupby("u")}
        return cls(model, np.asarray(user_ids), list(titles), vectors, liked, rated, task)

    def row_of(self, user_id: int) -> int:
        """The row index of MovieLens ``user_id``; ValueError naming the valid range otherwise."""
        rows = np.flatnonzero(self.user_ids == user_id)
        if len(rows) == 0:
            raise ValueError(
                f"user_id={user_id!r} is not a MovieLens user; choose one of "
                f"{int(self.user_ids.min())}..{int(self.user_ids.max())}"
            )
        return int(rows[0])

    def history(self, user_id: int) -> list[str]:
        """Titles the user liked in training."""
        return [self.titles[i] for i in self.liked.get(self.row_of(user_id), [])]

    def recommend(self, user_id: int, k: int = 10) -> pd.DataFrame:
        """Top-``k`` unseen items: title, score, nearest liked item, and each tower part's attribution."""
        row = self.row_of(user_id)
        with torch.no_grad():
            scores = (
                self.model.score_items(self.task, torch.tensor([row]), len(self.titles))[0].numpy().copy()
            )
        scores[self.rated.get(row, [])] = -np.inf  # never recommend what the user already rated
        table = recommend_table(scores, self.titles, self.item_vectors, self.liked.get(row, []), k=k)
        top = top_k_items(scores[None, :], k)[0]
        parts = part_attribution(self.model, self.task, row, top).round(3)
        parts.index = table.index
        return table.join(parts)


class RecommendForUser:
    """A user-id box and a button: the user's liked history and top-10 with explanations, as HTML."""

    def __init__(self, recommender: UserRecommender, user_id: int = 1, k: int = 10) -> None:
        import ipywidgets as widgets

        self.recommender, self.k = recommender, k
        ids = recommender.user_ids
        self.user = widgets.BoundedIntText(
            value=user_id, min=int(ids.min()), max=int(ids.max()), description="user id"
        )
        self.button = widgets.Button(description="recommend", icon="search")
        self.html = widgets.HTML()
        self.widget = widgets.VBox([widgets.HBox([self.user, self.button]), self.html])
        self.button.on_click(lambda _: self.show(self.user.value))
        self.user.observe(lambda change: self.show(change["new"]), names="value")
        self.show(user_id)

    def render(self, user_id: int) -> str:
        """The HTML shown for ``user_id`` (also the static form: ``display(HTML(view.render(n)))``)."""
        history = self.recommender.history(user_id)
        shown = "; ".join(history[:8]) + (f" ... ({len(history)} in all)" if len(history) > 8 else "")
        table = self.recommender.recommend(user_id, self.k)
        return (
            f"<b>user {user_id}</b> liked in training: {shown or '(nothing yet: a cold user)'}"
            f"{table.to_html(float_format=lambda x: f'{x:.3f}')}"
        )

    def show(self, user_id: int) -> None:
        self.html.value = self.render(user_id)
