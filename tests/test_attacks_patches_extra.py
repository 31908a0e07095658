"""train_patch(positions=...): a patch trained at one fixed place (the contrast in notebook 04)."""

import pytest
import torch
from torch import nn

from advlab import attacks


def _corner_detector():
    """Class 1 when the top-left 4x4 corner of an 8x8 image is bright and the rest is dark."""
    weight = -torch.ones(8, 8)
    weight[:4, :4] = 1.0
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.stack([torch.zeros(64), weight.flatten()]))
        model[1].bias.copy_(torch.tensor([0.0, -8.0]))
    return model


def test_fixed_position_patch_works_where_it_was_trained_only():
    model = _corner_detector().train()
    x = 0.1 * torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.zeros(64, dtype=torch.long)
    corner = attacks.train_patch(model, x, 1, size=4, steps=40, batch_size=16, lr=0.3,
                                 positions=(0, 0), generator=torch.Generator().manual_seed(0))
    assert corner.shape == (1, 4, 4) and corner.min() >= 0 and corner.max() <= 1
    assert model.training and all(p.grad is None for p in model.parameters())
    assert attacks.patch_success(model, corner, x, y, 1, positions=(0, 0)) == 1.0
    assert attacks.patch_success(model, corner, x, y, 1, positions=(4, 4)) == 0.0
    # Trained where the detector's weights are negative, the patch learns to stay dark.
    far = attacks.train_patch(model, x, 1, size=4, steps=40, batch_size=16, lr=0.3,
                              positions=(4, 4), generator=torch.Generator().manual_seed(0))
    assert far.max() < 0.5 < corner.min()


def test_default_positions_keep_the_random_placement_unchanged():
    model = _corner_detector()
    x = 0.1 * torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    a = attacks.train_patch(model, x, 1, size=3, steps=5, batch_size=8,
                            generator=torch.Generator().manual_seed(2))
    b = attacks.train_patch(model, x, 1, size=3, steps=5, batch_size=8, positions=None,
                            generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("positions", [(5, 5), (0, -1), torch.zeros(32, 2, dtype=torch.long),
                                       (0.5, 1.0), (1, 2, 3)])
def test_bad_fixed_positions_are_refused_before_training(positions):
    x = torch.rand(32, 1, 8, 8)
    with pytest.raises(ValueError, match="positions"):
        attacks.train_patch(_corner_detector(), x, 1, size=4, steps=1, positions=positions)
