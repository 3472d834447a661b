"""The embedding-explorer widget: neighbours before/after, HTML updates, static fallback."""

from __future__ import annotations

import pytest
import torch

from mtrec_utils.viz.widgets import EmbeddingExplorer

TITLES = ["Toy Story", "Toy Story 2", "Alien", "Aliens"]
BEFORE = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
AFTER = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.1, 0.9]])


def test_explorer_shows_neighbours_in_each_space_and_follows_the_dropdown():
    ex = EmbeddingExplorer(TITLES, {"pretrained": BEFORE, "joint": AFTER}, k=2, start="Toy Story")
    assert ex.neighbours["pretrained"][0][0] == "Toy Story 2"
    assert ex.neighbours["joint"][0][0] == "Alien"
    assert "Nearest neighbours of Toy Story" in ex.html.value and "<th>joint</th>" in ex.html.value
    ex.dropdown.value = TITLES.index("Alien")  # what a user picking from the list does
    assert ex.neighbours["pretrained"][0][0] == "Aliens"
    assert "Nearest neighbours of Alien<" in ex.html.value
    assert ex.static().data == ex.html.value
    assert type(ex.html).__name__ == "HTML" and "Output" not in {type(c).__name__ for c in ex.widget.children}


def test_explorer_rejects_bad_inputs():
    with pytest.raises(ValueError, match="one row per title"):
        EmbeddingExplorer(TITLES, {"x": BEFORE[:3]})
    with pytest.raises(ValueError, match="start='Jaws'"):
        EmbeddingExplorer(TITLES, {"x": BEFORE}, start="Jaws")
