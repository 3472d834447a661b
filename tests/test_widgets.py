"""Notebook 01's task-weight slider and its static figure (no front end needed)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import ipywidgets as widgets
import pytest
import torch

from mtrec_utils.analyses.joint_loss.toy import ToyProblem
from mtrec_utils.viz.widgets import TaskWeightSlider, draw_task_weight


def test_static_figure_has_both_spaces_labelled():
    fig = draw_task_weight(ToyProblem(), [0.2, 0.5, 0.9])
    ax_theta, ax_loss = fig.axes
    assert "theta" in ax_theta.get_xlabel() and "task 2 loss" in ax_loss.get_ylabel()
    labels = [t.get_text() for t in ax_loss.get_legend().get_texts()]
    assert labels == ["Pareto front", "$w_1$=0.20", "$w_1$=0.50", "$w_1$=0.90"]
    assert len(ax_theta.texts) == 3  # three arrows: the two task gradients and their weighted sum


def test_slider_moves_the_point_along_the_front():
    problem = ToyProblem()
    slider = TaskWeightSlider(problem, weight=0.3)
    assert isinstance(slider.widget, widgets.VBox)
    assert slider.widget.children == (slider.slider, slider.image)
    assert torch.allclose(slider.point, problem.pareto_point(0.3))
    before, png = slider.losses.clone(), bytes(slider.image.value)
    assert png.startswith(b"\x89PNG")
    slider.slider.value = 0.8  # as if the learner dragged the handle
    assert bytes(slider.image.value).startswith(b"\x89PNG") and bytes(slider.image.value) != png
    assert torch.allclose(slider.point, problem.pareto_point(0.8))
    assert slider.losses[0] < before[0] and slider.losses[1] > before[1]  # more weight on task 1
    assert any("0.80" in text.get_text() for text in slider.figure.texts)  # the figure was redrawn


def test_slider_range_is_the_task_weight():
    slider = TaskWeightSlider(weight=0.5)
    assert (slider.slider.min, slider.slider.max) == (0.0, 1.0)
    with pytest.raises(ValueError, match="alpha=1.2"):
        slider.update(1.2)
