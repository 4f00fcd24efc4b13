"""coursekit.runtime: profile selection, pick tables, seeding."""

import random

import numpy as np
import pytest
import torch

from coursekit import runtime
from coursekit.train import batches, fit


@pytest.fixture
def clean_env(monkeypatch):
    """No profile override, no COURSEKIT_PROFILE, no CI; restored afterwards."""
    monkeypatch.delenv(runtime.ENV_PROFILE, raising=False)
    monkeypatch.delenv("CI", raising=False)
    runtime.set_profile(None)
    yield monkeypatch
    runtime.set_profile(None)


def test_automatic_profile_follows_the_hardware(clean_env):
    assert runtime.profile() == ("gpu" if runtime._accelerator() else "cpu")


@pytest.mark.parametrize("value, want", [("fast", "fast"), ("CPU", "cpu"), (" gpu ", "gpu")])
def test_env_var_selects_the_profile(clean_env, value, want):
    clean_env.setenv(runtime.ENV_PROFILE, value)
    assert runtime.profile() == want


@pytest.mark.parametrize("value, want_fast", [("true", True), ("1", True), ("false", False), ("0", False), ("", False)])
def test_ci_means_fast(clean_env, value, want_fast):
    clean_env.setenv("CI", value)
    assert (runtime.profile() == "fast") == want_fast


def test_env_var_wins_over_ci_and_set_profile_wins_over_both(clean_env):
    clean_env.setenv("CI", "true")
    clean_env.setenv(runtime.ENV_PROFILE, "cpu")
    assert runtime.profile() == "cpu"
    runtime.set_profile("gpu")
    assert runtime.profile() == "gpu"
    runtime.set_profile(None)
    assert runtime.profile() == "cpu"


def test_invalid_profile_names_are_errors(clean_env):
    clean_env.setenv(runtime.ENV_PROFILE, "turbo")
    with pytest.raises(ValueError, match=r"COURSEKIT_PROFILE='turbo' is not a profile"):
        runtime.profile()
    with pytest.raises(ValueError, match="unknown profile 'FAST'"):
        runtime.set_profile("FAST")


def test_fast_profile_computes_on_the_cpu(clean_env):
    runtime.set_profile("fast")
    assert runtime.device() == torch.device("cpu")
    assert runtime.describe().endswith("| device cpu | profile fast")


def test_pick_returns_the_active_entry(clean_env):
    table = {"fast": 1, "cpu": 2, "gpu": 3}
    for name, want in zip(runtime.PROFILES, (1, 2, 3)):
        runtime.set_profile(name)
        assert runtime.pick(table) == want


def test_pick_rejects_a_table_missing_a_profile(clean_env):
    runtime.set_profile("fast")
    with pytest.raises(KeyError, match=r"lacks \['gpu'\]"):
        runtime.pick({"fast": 1, "cpu": 2})  # even though the active profile is present


def test_seed_everything_reproduces_every_generator():
    def draw():
        gen = runtime.seed_everything(7)
        return (random.random(), np.random.rand(), torch.rand(3), torch.rand(3, generator=gen))

    first, second = draw(), draw()
    assert first[:2] == second[:2]
    assert torch.equal(first[2], second[2]) and torch.equal(first[3], second[3])
    runtime.seed_everything(8)
    assert not torch.equal(torch.rand(3), first[2])


def test_same_seed_same_tiny_training_run():
    def train_once(seed):
        gen = runtime.seed_everything(seed)
        x = torch.randn(32, 4, generator=gen)
        y = (x.sum(1) > 0).long()
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.2), torch.nn.Linear(8, 2))
        fit(model, batches(x, y, batch_size=8, shuffle=True, generator=gen), epochs=2, progress=False, device="cpu")
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    assert torch.equal(train_once(0), train_once(0))
    assert not torch.equal(train_once(0), train_once(1))


def test_data_dir_honours_the_env_var(monkeypatch, tmp_path):
    monkeypatch.setenv(runtime.ENV_DATA, str(tmp_path / "cache"))
    assert runtime.data_dir() == tmp_path / "cache" and (tmp_path / "cache").is_dir()
