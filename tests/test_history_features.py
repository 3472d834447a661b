"""Implicit-feedback history features (SVD++): the lists, the normalised sum, the towers, the bundle."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from mtrec_utils.core.config import resolve_profile, set_seed
from mtrec_utils.models import EntityTower, FrozenText, MultiTaskModel
from mtrec_utils.models.implicit import ImplicitHistory, InteractionLists
from mtrec_utils.training.bundles import fusion_bundle, movielens_bundle
from mtrec_utils.training.experiments import run_experiment

#: a tiny slice of the real u1 split: enough users with ratings in every part
TINY = dataclasses.replace(
    resolve_profile("smoke"),
    max_train_ratings=3000,
    max_test_ratings=600,
    max_eval_users=20,
    max_length=16,
    batch_size=128,
)


def explicit_history(h: ImplicitHistory, lists: InteractionLists, users: torch.Tensor) -> torch.Tensor:
    """The formula written out, one user at a time: ``|N(u)|^-1/2 sum_j y_j`` (0 for no items)."""
    rows = []
    for u in users.tolist():
        items = lists.of(u)
        rows.append(h.y.weight[items].sum(0) / len(items) ** 0.5 if items else torch.zeros(h.dim))
    return torch.stack(rows)


def test_lists_keep_each_users_items_once_and_in_order():
    lists = InteractionLists.from_pairs([2, 0, 2, 0, 2], [4, 3, 0, 1, 4], num_users=4, num_items=5)
    assert lists.offsets.tolist() == [0, 2, 2, 4, 4]
    assert [lists.of(u) for u in range(4)] == [[1, 3], [], [0, 4], []]
    assert lists.counts().tolist() == [2, 0, 2, 0] and lists.num_users == 4


@pytest.mark.parametrize(
    ("users", "items", "match"),
    [([0, 1], [0], "differ in length"), ([0, 4], [0, 1], "user indices"), ([0, 1], [0, -1], "item indices")],
)
def test_lists_refuse_bad_pairs(users, items, match):
    with pytest.raises(ValueError, match=match):
        InteractionLists.from_pairs(users, items, num_users=4, num_items=5)


def test_history_is_the_normalised_sum_of_the_rated_items_vectors():
    g = torch.Generator().manual_seed(0)
    lists = InteractionLists.from_pairs(
        torch.randint(6, (40,), generator=g), torch.randint(9, (40,), generator=g), 7, 9
    )
    assert lists.counts()[6] == 0  # user 6 rated nothing
    torch.manual_seed(0)
    h = ImplicitHistory(lists, dim=5)
    users = torch.tensor([3, 0, 6, 3, 5, 0, 1])
    expected = explicit_history(h, lists, users)
    torch.testing.assert_close(h(users), expected)  # the CPU path: each distinct user once
    torch.testing.assert_close(h.bags(users), expected)  # every row summed (the GPU path)
    assert torch.equal(h(users)[2], torch.zeros(5))
    h(users).sum().backward()  # y_j gets |N(u)|^-1/2 from each batch row of each user who rated j
    grad = torch.zeros(9)
    for u in users.tolist():
        for j in lists.of(u):
            grad[j] += len(lists.of(u)) ** -0.5
    torch.testing.assert_close(h.y.weight.grad[:, 0], grad)


def test_user_tower_adds_the_history_part_and_default_tower_is_unchanged():
    lists = InteractionLists.from_pairs([0, 0, 1, 2], [1, 2, 2, 0], num_users=3, num_items=4)
    text = FrozenText(torch.randn(3, 6))
    torch.manual_seed(0)
    plain = EntityTower(3, 8, text=text)
    torch.manual_seed(0)
    with_history = EntityTower(3, 8, text=text, history=lists).eval()
    assert plain.part_names == ["id", "text"] and with_history.part_names == ["id", "text", "history"]
    assert not hasattr(plain.history, "y")  # nothing registered: same parameters, same state dict
    assert list(plain.state_dict()) == [k for k in with_history.state_dict() if not k.startswith("history.")]
    idx = torch.tensor([2, 0, 0, 1])
    parts = with_history.part_dict(idx)
    torch.testing.assert_close(with_history(idx), parts["id"] + parts["text"] + parts["history"])
    torch.testing.assert_close(parts["history"], explicit_history(with_history.history, lists, idx))
    with pytest.raises(ValueError, match="history has 3 users"):
        EntityTower(5, 8, history=lists)
    history_only = EntityTower(3, 8, use_id=False, history=lists)
    assert history_only.part_names == ["history"]


@pytest.fixture(scope="module")
def tiny_bundles(data_cache):
    """A tiny u1 slice with and without history, built from the same seed (real data, tiny encoder)."""
    from mtrec_utils.models.encoders import load_encoder

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MTREC_DATA", str(data_cache))
        mp.setenv("MTREC_OFFLINE", "1")
        encoder = load_encoder("tiny-random", device="cpu")
        plain = movielens_bundle(TINY, encoder, set_seed(0), progress=False)
        history = movielens_bundle(TINY, encoder, set_seed(0), progress=False, history=True)
    return plain, history


def pairs_of(loader) -> set[tuple[int, int]]:
    t = loader.dataset.tensors
    return set(zip(t["user"].tolist(), t["item"].tolist()))


def test_bundle_history_holds_the_training_items_and_no_validation_or_test_item(tiny_bundles):
    plain, bundle = tiny_bundles
    lists = bundle.tower_kwargs["user"]["history"]
    assert "history" not in plain.tower_kwargs["user"]
    listed = {(u, i) for u in range(lists.num_users) for i in lists.of(u)}
    train, val, test = (pairs_of(d["ratings"]) for d in (bundle.train, bundle.val, bundle.test))
    assert listed == train  # every training rating's item, nothing else
    assert val and test and not listed & val and not listed & test
    # the test split's users do have training items: the check above is not empty for them
    assert any(lists.counts()[u] > 0 for u, _ in test)
    # history changes nothing else: same split, same loaders' data, same texts, same generator state
    for part in ("train", "val", "test"):
        for name, data in getattr(plain, part).items():
            tensors = getattr(getattr(data, "dataset", None), "tensors", {})
            for key, value in tensors.items():
                assert torch.equal(value, getattr(bundle, part)[name].dataset.tensors[key]), (part, name, key)
    assert torch.equal(plain.texts["user"].table, bundle.texts["user"].table)
    assert torch.equal(plain.generator.get_state(), bundle.generator.get_state())


def test_bundle_with_history_trains_fresh_towers_and_refuses_fusion(tiny_bundles, one_thread):
    _, bundle = tiny_bundles
    first, second = bundle.make_towers(), bundle.make_towers()
    assert first["user"].part_names == ["id", "text", "history"] and first["item"].part_names == [
        "id",
        "text",
    ]
    assert first["user"].history.y.weight is not second["user"].history.y.weight  # a fresh y per model
    assert isinstance(MultiTaskModel(first, bundle.select(["rating"])), MultiTaskModel)
    result = run_experiment(bundle, ["rating", "interest"], seed=0, epochs=1, device="cpu")
    set_seed(0)  # as run_experiment does before it builds the towers: their starting weights
    start = bundle.make_towers()["user"].history.y.weight
    trained = result.model.towers["user"].history.y.weight
    assert (trained - start).abs().max() > 1e-3  # y was trained
    assert 0.5 < result.test["rating/rmse"] < 2.0 and 0.0 <= result.test["interest/ndcg@10"] <= 1.0
    with pytest.raises(ValueError, match="history=False"):
        fusion_bundle(bundle, "gate")
