"""The eight distorted-MNIST networks: shapes, identity start, parameter budget, name parsing."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from coursekit.models.stn_mnist import CNN, FCN, MODEL_NAMES, build_model, count_parameters, parse_name


def test_names_are_the_table_rows():
    assert MODEL_NAMES == ("FCN", "CNN", "ST-FCN Aff", "ST-FCN Proj", "ST-FCN TPS",
                           "ST-CNN Aff", "ST-CNN Proj", "ST-CNN TPS")
    assert parse_name("ST-CNN TPS") == ("ST-CNN", "tps")
    assert parse_name("ST-FCN", "projective") == ("ST-FCN", "projective")
    assert parse_name("ST-CNN") == ("ST-CNN", "affine")
    assert parse_name("CNN") == ("CNN", None)


@pytest.mark.parametrize("size", [28, 42])
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_logits_shape_and_identity_start(name, size):
    torch.manual_seed(0)
    model = build_model(name, input_size=size)
    x = torch.rand(3, 1, size, size)
    assert model(x).shape == (3, 10)
    if model.transformer is None:
        assert not name.startswith("ST")
        return
    # A fresh spatial transformer is the identity: it returns its input.
    torch.testing.assert_close(model.canonicalise(x), x, atol=1e-5, rtol=0)
    expected = {"Aff": (3, 2, 3), "Proj": (3, 8), "TPS": (3, 16, 2)}[name.split()[1]]
    assert model.transformer.last_theta.shape == expected


def test_rts_st_networks_pool_their_42_pixel_output_by_two():
    model = build_model("ST-CNN Aff", input_size=42)
    seen = {}
    model.classifier.register_forward_pre_hook(lambda m, args: seen.update(shape=args[0].shape))
    model(torch.rand(2, 1, 42, 42))
    assert seen["shape"] == (2, 1, 21, 21)
    assert model.transformer.last_grid.shape == (2, 42, 42, 2)       # the ST samples at full size
    for name in ("CNN", "FCN"):                                       # baselines see all 42x42 pixels
        baseline = build_model(name, input_size=42)
        assert isinstance(baseline.pool, torch.nn.Identity)
        baseline.classifier.register_forward_pre_hook(lambda m, args: seen.update(shape=args[0].shape))
        baseline(torch.rand(2, 1, 42, 42))
        assert seen["shape"] == (2, 1, 42, 42)


def test_classification_nets_have_three_weight_layers():
    for net in (FCN(28), CNN(28), CNN(21)):
        weights = [m for m in net.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
        assert len(weights) == 3
    assert [m.kernel_size for m in CNN(28).modules() if isinstance(m, torch.nn.Conv2d)] == [(9, 9), (7, 7)]


def test_parameter_counts_are_comparable():
    counts = {(name, size): count_parameters(build_model(name, input_size=size))
              for name in MODEL_NAMES for size in (28, 42)}
    for size in (28, 42):
        print(size, {name: counts[name, size] for name in MODEL_NAMES})
    assert counts["FCN", 28] == 784 * 64 + 64 + 64 * 64 + 64 + 64 * 10 + 10
    assert abs(counts["FCN", 28] / counts["CNN", 28] - 1) < 0.05          # the paper: about equal
    assert abs(counts["FCN", 42] / counts["FCN", 28] - 1) < 0.1             # narrower on 42x42
    assert max(counts.values()) / min(counts.values()) < 1.8
    assert max(v for (n, s), v in counts.items() if s == 28) / min(v for (n, s), v in counts.items() if s == 28) < 1.6


def test_gradient_reaches_the_localisation_net():
    torch.manual_seed(0)
    for name in ("ST-FCN TPS", "ST-CNN Proj"):
        model = build_model(name)
        loss = F.cross_entropy(model(torch.rand(4, 1, 28, 28)), torch.arange(4))
        loss.backward()
        regression = [m for m in model.transformer.localisation.modules() if isinstance(m, torch.nn.Linear)][-1]
        assert regression.weight.grad.abs().sum() > 0


def test_bad_names_and_sizes():
    with pytest.raises(ValueError, match="unknown model 'MLP'"):
        build_model("MLP")
    with pytest.raises(ValueError, match="has no spatial transformer"):
        build_model("CNN", transform="affine")
    with pytest.raises(ValueError, match="transform must be one of"):
        build_model("ST-CNN", transform="attention")
    with pytest.raises(ValueError, match="expected one of"):
        build_model("ST-CNN Aff", transform="tps")
    with pytest.raises(ValueError, match="input_size must be one of"):
        build_model("CNN", input_size=60)
    with pytest.raises(ValueError, match="at least 21x21"):
        CNN(20)
