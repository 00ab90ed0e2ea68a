"""Knowledge distillation: a frozen teacher's maps as targets for a student (``distill.py``).

Loss per step (one student forward pass over the labelled and, when given, unlabelled images
together, so batch norm sees both)::

    task_weight * supervised loss (labelled images; auxiliary head included)
  + kd_weight   * teacher loss    (every image)
  + feature_weight * hint loss    (PSPNet pairs only)

The teacher loss matches the student's quality map to the teacher's directly (MSE) and its
cos 2θ, sin 2θ and width maps weighted per pixel by the teacher's quality clamped to [0, 1]:
an angle or an opening means nothing on the bare table. The hint loss is the MSE between the
teacher's decoder features (the input of PSPNet's final 1 x 1 convolution) and the student's,
through a learnt 1 x 1 adapter (student channels -> teacher channels, bilinear resize when the
output strides differ). The teacher runs in eval mode, without gradients, in the same autocast
as the student, and is never updated.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models import GRASP_MAP_NAMES
from utils.checkpoint import load_model, unwrap
from utils.steps import StepContext, StepOutput


def load_teacher(
    path: str, weights: str, input_channels: int, input_size: int, device: torch.device
) -> tuple[nn.Module, dict[str, Any]]:
    """The teacher of ``path``, frozen on ``device``; refuses one trained on other inputs."""
    teacher, ckpt = load_model(path, weights=weights)
    if teacher.input_channels != input_channels:
        raise ValueError(
            f"--teacher {path}: the teacher takes {teacher.input_channels} input channel(s), the "
            f"student's data gives {input_channels} (--use-depth / --use-rgb)"
        )
    trained_size = ckpt.get("args", {}).get("input_size")
    if trained_size is not None and trained_size != input_size:
        raise ValueError(
            f"--teacher {path}: the teacher was trained at --input-size {trained_size}, the "
            f"student's data is {input_size}"
        )
    teacher = teacher.to(device).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher, ckpt


def teacher_loss(student: Tensor, teacher: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """Quality matched directly; angle and width weighted by the teacher's quality (float32)."""
    s, t = student.float(), teacher.float()
    terms = {"kd_quality": F.mse_loss(s[:, 0], t[:, 0])}
    w = t[:, 0].clamp(0.0, 1.0)
    norm = w.sum().clamp_min(1e-6)
    for i, name in enumerate(GRASP_MAP_NAMES[1:], start=1):
        terms[f"kd_{name}"] = (w * (s[:, i] - t[:, i]) ** 2).sum() / norm
    return sum(terms.values()), terms  # type: ignore[return-value]


class _Features:
    """Captures the input of a network's final 1 x 1 convolution (``out_conv``)."""

    def __init__(self, model: nn.Module) -> None:
        net = unwrap(model)
        if not hasattr(net, "out_conv"):
            raise ValueError(
                f"--feature-weight needs PSPNet teacher and student (no decoder features in "
                f"{type(net).__name__})"
            )
        self.channels = net.out_conv.in_channels
        self.value: Tensor | None = None
        net.out_conv.register_forward_pre_hook(self._hook)

    def _hook(self, module: nn.Module, args: tuple[Tensor, ...]) -> None:
        self.value = args[0]


class DistillStep:
    """The distillation step (see the module docstring); ``adapter`` holds the hint loss's
    trainable 1 x 1 convolution (its parameters join the optimiser; saved in ``state_dict``)."""

    def __init__(
        self,
        teacher: nn.Module,
        student: nn.Module,
        task_weight: float = 1.0,
        kd_weight: float = 1.0,
        feature_weight: float = 0.0,
        map_loss: str = "all",
    ) -> None:
        self.teacher = teacher
        self.map_loss = map_loss  # where the label loss learns angle and opening
        self.task_weight = float(task_weight)
        self.kd_weight = float(kd_weight)
        self.feature_weight = float(feature_weight)
        self.adapter: nn.Module | None = None
        if self.feature_weight > 0:
            self._t_feats = _Features(teacher)
            self._s_feats = _Features(student)
            device = next(unwrap(student).parameters()).device
            self.adapter = nn.Conv2d(self._s_feats.channels, self._t_feats.channels, 1).to(device)

    def parameters(self) -> list[nn.Parameter]:
        return list(self.adapter.parameters()) if self.adapter is not None else []

    def __call__(self, model: nn.Module, batch: Any, ctx: StepContext) -> StepOutput:
        labelled, unlabelled = batch if isinstance(batch, tuple) else (batch, None)
        xs = [labelled["x"]] + ([unlabelled["x"]] if unlabelled is not None else [])
        x = ctx.precision.to_input(torch.cat(xs) if len(xs) > 1 else xs[0], ctx.device)
        n_lab = len(labelled["x"])
        with torch.no_grad():
            t_maps = self.teacher(x)
            t_feat = self._t_feats.value if self.adapter is not None else None
        # The auxiliary head only serves the label loss: without it, leave it out of the graph
        # (DDP would wait for its gradients forever).
        out = model(x, with_aux=self.task_weight > 0)
        main, aux = out if isinstance(out, tuple) else (out, None)
        terms: dict[str, Tensor] = {}
        loss = torch.zeros((), device=ctx.device)
        if self.task_weight > 0:
            y = labelled["y"].to(ctx.device, non_blocking=True)
            sup = unwrap(model).loss_from_outputs(
                main[:n_lab], None if aux is None else aux[:n_lab], y, self.map_loss
            )
            loss = loss + self.task_weight * sup["loss"]
            terms["task"] = sup["loss"].detach()
        if self.kd_weight > 0:
            kd, kd_terms = teacher_loss(main, t_maps)
            loss = loss + self.kd_weight * kd
            terms["kd"] = kd.detach()
            terms.update({k: v.detach() for k, v in kd_terms.items()})
        if self.adapter is not None:
            s_feat = self.adapter(self._s_feats.value)
            if s_feat.shape[-2:] != t_feat.shape[-2:]:
                s_feat = F.interpolate(
                    s_feat, size=t_feat.shape[-2:], mode="bilinear", align_corners=False
                )
            hint = F.mse_loss(s_feat.float(), t_feat.float())
            loss = loss + self.feature_weight * hint
            terms["hint"] = hint.detach()
        return StepOutput(loss, terms, len(x))

    def state_dict(self) -> dict[str, Any]:
        return {"adapter": self.adapter.state_dict()} if self.adapter is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.adapter is not None and "adapter" in state:
            self.adapter.load_state_dict(state["adapter"])
