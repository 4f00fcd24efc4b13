"""FPD features: the shipped PointNet state file is rebuilt by `coursekit fpd-weights` and separates classes."""

import pytest
import torch

from coursekit.cli import main
from coursekit.data.world import make_classification_split
from coursekit.metrics import fpd_features as fpd


@pytest.fixture(scope="module")
def clouds():
    data, _ = make_classification_split(6, 0, 512, seed=123, classes=("airplane", "chair", "mug"), progress=False)
    return data


def test_shipped_file_is_small_and_complete():
    assert fpd.WEIGHTS_FILE.is_file()
    assert fpd.WEIGHTS_FILE.stat().st_size < 1_000_000
    state = torch.load(fpd.WEIGHTS_FILE, weights_only=True)
    assert state["config"] == fpd.CONFIG


def test_command_rebuilds_the_shipped_features(tmp_path, clouds):
    """The full deterministic build (~15 s on one core) gives the shipped features back."""
    out = tmp_path / "rebuilt.pt"
    assert main(["fpd-weights", "--out", str(out)]) == 0
    shipped = fpd.fpd_features(clouds.points)
    rebuilt = fpd.fpd_features(clouds.points, out)
    assert torch.allclose(rebuilt, shipped, rtol=1e-3, atol=1e-4 * shipped.abs().max())
    # and the comparison can fail: a differently seeded build gives other features
    other = tmp_path / "other.pt"
    fpd.build_weights(other, {**fpd.CONFIG, "seed": 1, "n_train_per_class": 2, "epochs": 1})
    assert not torch.allclose(fpd.fpd_features(clouds.points, other), shipped, rtol=1e-2, atol=1e-2)


def test_fpd_separates_classes_and_is_zero_on_itself(clouds):
    feats = fpd.fpd_features(clouds.points)
    assert feats.shape == (18, fpd.CONFIG["mlp2"][-1])
    planes, chairs = clouds.points[:6], clouds.points[6:12]
    more_planes, _ = make_classification_split(6, 0, 512, seed=7, classes=("airplane",), progress=False)
    same = fpd.frechet_point_distance(more_planes.points, planes)
    cross = fpd.frechet_point_distance(chairs, planes)
    assert abs(float(fpd.frechet_point_distance(planes, planes))) < 1e-6 * float(cross)
    assert same < 0.5 * cross


def test_missing_file_and_bad_points(tmp_path):
    with pytest.raises(FileNotFoundError, match="coursekit fpd-weights"):
        fpd.fpd_features(torch.rand(2, 16, 3), tmp_path / "nope.pt")
    with pytest.raises(ValueError, match="shape"):
        fpd.fpd_features(torch.rand(2, 16, 2))
