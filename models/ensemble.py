"""An ensemble of trained grasp networks as one network: the mean of their maps.

Used as a distillation teacher (``distill.py --teacher A.pt B.pt C.pt``) and scored as one
model (``eval_net.py --ensemble --network A.pt B.pt C.pt``).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


class MapEnsemble(nn.Module):
    """The mean of ``members``' output maps (``N x 4 x H x W`` float32): quality, cos 2θ and
    sin 2θ (averaged as a vector, as test-time augmentation does, so angles near ±π/2 do not
    cancel) and width. Members must take the same input channels; each runs as it is (eval
    mode and frozen parameters are the caller's business)."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("MapEnsemble needs at least one network")
        channels = {m.input_channels for m in members}
        if len(channels) != 1:
            raise ValueError(f"ensemble members take different input channels: {sorted(channels)}")
        self.members = nn.ModuleList(members)

    @property
    def input_channels(self) -> int:
        return self.members[0].input_channels

    def forward(self, x: Tensor) -> Tensor:
        total = None
        for m in self.members:
            out = m(x).float()
            total = out if total is None else total + out
        return total / len(self.members)
