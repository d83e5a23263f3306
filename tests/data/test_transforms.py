import numpy as np
import torch

from ar_experiments.data.transforms import KINETICS_MEAN, KINETICS_STD, to_normalised_tensor


def test_normalisation_is_the_same_for_crops_and_flips_as_for_copies():
    frames = np.random.default_rng(0).integers(0, 256, (4, 20, 30, 3), dtype=np.uint8)
    mean = torch.tensor(KINETICS_MEAN).view(-1, 1, 1, 1)
    std = torch.tensor(KINETICS_STD).view(-1, 1, 1, 1)
    for view in (frames, frames[:, 2:18, 5:21], frames[:, 2:18, 5:21][:, :, ::-1]):
        expected = (torch.from_numpy(view.copy()).permute(3, 0, 1, 2).float() / 255 - mean) / std
        clip = to_normalised_tensor(view)
        assert clip.shape == expected.shape and clip.dtype == torch.float32
        assert torch.allclose(clip, expected, atol=1e-5)
