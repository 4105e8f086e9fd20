"""Per-frame feature maps from token sequences, for Grad-CAM (Eq. 2) on video transformers.

TA needs, at the CAM layer, per-frame maps ``(B, C, T', h, w)`` (the model contract of
:mod:`videotaf.models.base`). A video transformer carries a token sequence instead: an optional prefix (class,
distillation tokens) followed by one token per space-time patch, in the model's own order. :class:`TokenFold`
turns the sequence into maps and back, bit for bit, around an identity :class:`TokenMapTap`, the module the
model declares as its ``cam_layer``; the attack's forward hook then sees ordinary maps and ``videotaf.cam`` /
``videotaf.attack`` need no change. Everything is a view, a permute or a concatenation: differentiable, batched,
and the network downstream sees exactly the tokens it would have seen.

Orders of the patch tokens (``T'`` = frames after the tubelet, ``h x w`` = patch grid):

- ``"thw"``: frame-major, then rows, then columns (VideoMAE, ViViT, torchvision MViT: a Conv3d patch embedding
  flattened over ``(T', h, w)``);
- ``"hwt"``: rows, columns, then frames (Hugging Face TimeSformer: its embedding puts the frame index fastest and
  its divided space-time attention reads the sequence that way).

A fold can sit on a module's input (``attach(module, "input")``, for models whose classifier reads the class
token: there, the patch tokens of the last block's output do not reach the logits, but those of its input do
through attention) or on its output (``"output"``, for models that pool the patch tokens).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

TokenOrder = Literal["thw", "hwt"]
Where = Literal["input", "output"]


class TokenMapTap(nn.Identity):
    """Identity on feature maps ``(B, C, T', h, w)``; exists so a forward hook can grab the transformer's maps."""


def tokens_to_maps(
    tokens: torch.Tensor, grid: tuple[int, int, int], prefix: int = 0, order: TokenOrder = "thw"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``(B, prefix + T'*h*w, C)`` tokens into the prefix tokens and per-frame maps.

    Args:
        tokens: the token sequence of one layer.
        grid: ``(T', h, w)``, the patch grid.
        prefix: number of leading non-patch tokens (class, distillation), dropped from the maps.
        order: the order of the patch tokens (see the module docstring).

    Returns:
        ``(prefix_tokens (B, prefix, C), maps (B, C, T', h, w))``; ``videotaf.cam.frame_maps`` turns the maps into
        the ``(B, T', C, h, w)`` of Eq. (2).
    """
    t, h, w = grid
    if tokens.dim() != 3 or tokens.shape[1] != prefix + t * h * w:
        raise ValueError(
            f"expected tokens (B, {prefix} + {t}*{h}*{w} = {prefix + t * h * w}, C) for a {t}x{h}x{w} patch grid, "
            f"got {tuple(tokens.shape)}"
        )
    b, _, c = tokens.shape
    head, patches = tokens[:, :prefix], tokens[:, prefix:]
    if order == "thw":
        maps = patches.transpose(1, 2).reshape(b, c, t, h, w)
    elif order == "hwt":
        maps = patches.reshape(b, h, w, t, c).permute(0, 4, 3, 1, 2)
    else:
        raise ValueError(f"order must be 'thw' or 'hwt', got {order!r}")
    return head, maps


def maps_to_tokens(head: torch.Tensor, maps: torch.Tensor, order: TokenOrder = "thw") -> torch.Tensor:
    """The inverse of :func:`tokens_to_maps`: ``(B, P, C)`` and ``(B, C, T', h, w)`` -> ``(B, P + T'*h*w, C)``."""
    b, c = maps.shape[:2]
    if order == "thw":
        patches = maps.flatten(2).transpose(1, 2)
    elif order == "hwt":
        patches = maps.permute(0, 3, 4, 2, 1).reshape(b, -1, c)
    else:
        raise ValueError(f"order must be 'thw' or 'hwt', got {order!r}")
    if head.shape[1] == 0:
        return patches
    return torch.cat((head, patches), dim=1)


class TokenFold(nn.Module):
    """Tokens -> maps -> :attr:`tap` -> tokens, an identity on the values that exposes per-frame maps.

    Args:
        grid: ``(T', h, w)``, the patch grid of the layer it folds.
        prefix: leading non-patch tokens (1 for a class token).
        order: the order of the patch tokens.

    ``tap`` is the ``cam_layer`` of the model; it outputs ``(B, C, T', h, w)``.
    """

    def __init__(self, grid: tuple[int, int, int], prefix: int = 0, order: TokenOrder = "thw") -> None:
        super().__init__()
        if order not in ("thw", "hwt"):
            raise ValueError(f"order must be 'thw' or 'hwt', got {order!r}")
        if prefix < 0 or min(grid) < 1:
            raise ValueError(f"need prefix >= 0 and a positive grid, got prefix={prefix}, grid={grid}")
        self.grid = tuple(int(g) for g in grid)
        self.prefix = int(prefix)
        self.order: TokenOrder = order
        self.tap = TokenMapTap()

    def extra_repr(self) -> str:
        return f"grid={self.grid}, prefix={self.prefix}, order={self.order!r}"

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, prefix + T'*h*w, C)`` -> the same tokens, after passing the patch tokens through :attr:`tap`."""
        t, h, w = self.grid
        head, maps = tokens_to_maps(tokens, (t, h, w), self.prefix, self.order)
        return maps_to_tokens(head, self.tap(maps), self.order)

    # Hooks rather than a wrapper module: the network keeps its own module tree and state_dict keys.
    def _pre_hook(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if args:
            return (self(args[0]), *args[1:]), kwargs
        if "hidden_states" not in kwargs:
            raise TypeError(f"{type(module).__name__} was called without hidden states to fold")
        return args, {**kwargs, "hidden_states": self(kwargs["hidden_states"])}

    def _post_hook(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
        if isinstance(output, torch.Tensor):
            return self(output)
        if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
            return type(output)((self(output[0]), *output[1:]))
        raise TypeError(f"{type(module).__name__} returned {type(output).__name__}; expected tokens to fold")

    def attach(self, module: nn.Module, where: Where) -> RemovableHandle:
        """Fold the tokens entering (``"input"``) or leaving (``"output"``) ``module`` on every forward.

        The first positional argument (else the ``hidden_states`` keyword) or the output (a tensor, or the first
        element of a tuple) is replaced by :meth:`forward` of it.
        """
        if where == "input":
            return module.register_forward_pre_hook(self._pre_hook, with_kwargs=True)
        if where == "output":
            return module.register_forward_hook(self._post_hook)
        raise ValueError(f"where must be 'input' or 'output', got {where!r}")
