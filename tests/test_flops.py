"""Tests for kbench.flops: hand-counted FLOPs of both families in every style, the matmul probe."""

import pytest

from kbench import flops, models, testing

# Hand counts (2 FLOPs per multiply-add, Dense and Conv2D only).
MLP_FORWARD_FLOPS = 2 * 784 * 128 + 2 * 128 * 10  # 203,264: the "~0.2 MFLOP"
CNN_FORWARD_FLOPS = (
    2 * 3 * 3 * 1 * 32 * 26 * 26      # conv_1: 28x28x1 -> 26x26x32
    + 2 * 3 * 3 * 32 * 64 * 11 * 11   # conv_2: 13x13x32 -> 11x11x64
    + 2 * 3 * 3 * 64 * 64 * 3 * 3     # conv_3: 5x5x64 -> 3x3x64
    + 2 * 576 * 128 + 2 * 128 * 10    # dense_hidden, logits
)


@pytest.mark.parametrize("style", models.STYLES)
@pytest.mark.parametrize("family, expected", [("mlp", MLP_FORWARD_FLOPS),
                                              ("cnn", CNN_FORWARD_FLOPS)])
def test_forward_flops_match_hand_count_in_every_style(family, expected, style):
    model = models.build_model(family, style)
    shape = models.input_shape_for(family)
    assert flops.forward_flops_per_sample(model, shape) == expected
    assert flops.training_flops_per_sample(model, shape) == 3 * expected


def test_matmul_probe_counts_flops_over_the_best_round():
    rate = flops.probe_matmul_flops(size=64, repeats=2, rounds=3, timer=testing.counting_timer(0.5))
    assert rate == 2 * 64**3 * 2 / 0.5


def test_matmul_probe_on_this_machine_is_plausible():
    rate = flops.probe_matmul_flops(size=256, repeats=2, rounds=2)
    # Any CPU that runs TF does more than 0.1 GFLOP/s and less than 100 TFLOP/s.
    assert 1e8 < rate < 1e14
