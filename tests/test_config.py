import pytest
import torch

from mtrec_utils.core.config import (
    PROFILES,
    check_choice,
    check_positive,
    get_device,
    resolve_profile,
    set_seed,
)


def test_profiles_are_defined_once_and_sized_in_order():
    assert set(PROFILES) == {"smoke", "cpu", "gpu"}
    assert PROFILES["smoke"].max_train_ratings < 80_000
    assert PROFILES["cpu"].max_train_ratings is None and PROFILES["cpu"].encoder_mode == "frozen"
    assert PROFILES["gpu"].encoder_mode == "full"


def test_auto_profile_follows_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_profile("auto").name == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_profile("auto").name == "gpu"


@pytest.mark.parametrize("bad", ["fast", "", "SMOKE", None, 3])
def test_unknown_profile_lists_choices(bad):
    with pytest.raises(ValueError, match=r"PROFILE=.*choose one of: 'smoke', 'cpu', 'gpu', 'auto'"):
        resolve_profile(bad)


def test_device_auto_and_errors(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert get_device("auto").type in {"cpu", "mps"}
    assert get_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="sees no CUDA GPU"):
        get_device("cuda")
    with pytest.raises(ValueError, match="DEVICE='gpu0' is not valid"):
        get_device("gpu0")


def test_set_seed_makes_runs_repeatable():
    g1 = set_seed(3)
    a = (torch.rand(3), torch.rand(2, generator=g1))
    g2 = set_seed(3)
    b = (torch.rand(3), torch.rand(2, generator=g2))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(ValueError, match="SEED=-1"):
        set_seed(-1)


def test_checks_name_parameter_value_and_choices():
    assert check_choice("MODE", "a", ["a", "b"]) == "a"
    with pytest.raises(ValueError, match=r"MODE='c' is not valid; choose one of: 'a', 'b'"):
        check_choice("MODE", "c", ["a", "b"])
    assert check_positive("LR", 1e-3) == 1e-3
    for bad in [0, -1, float("nan"), float("inf"), "1", True]:
        with pytest.raises(ValueError, match="LR="):
            check_positive("LR", bad)
    with pytest.raises(ValueError, match="positive integer"):
        check_positive("BATCH_SIZE", 2.5, integer=True)
