"""The expansion networks: a fully convolutional k -> 2k generator and a PatchGAN discriminator."""

from __future__ import annotations

import torch
import torch.nn as nn

from .config import MULTIPLE, ExpandConfig


def _norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class _ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1, padding_mode="reflect"),
            _norm(c),
            nn.ReLU(True),
            nn.Conv2d(c, c, 3, padding=1, padding_mode="reflect"),
            _norm(c),
        )

    def forward(self, x):
        return x + self.body(x)


class ExpansionGenerator(nn.Module):
    """k x k -> 2k x 2k, for any k that is a multiple of 4 (``expand`` handles every other size).

    Input and output are N x 3 x H x W images in [-1, 1].
    """

    def __init__(self, width: int = 64, blocks: int = 6, channels: int = 3):
        super().__init__()
        w = width
        layers = [nn.Conv2d(channels, w, 7, padding=3, padding_mode="reflect"), _norm(w), nn.ReLU(True)]
        for cin, cout in ((w, 2 * w), (2 * w, 4 * w)):  # two stride-2 downsamplings
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1, padding_mode="reflect"), _norm(cout), nn.ReLU(True)]
        layers += [_ResBlock(4 * w) for _ in range(blocks)]
        ups = (4 * w, 2 * w, w, max(w // 2, 4))
        for cin, cout in zip(ups[:-1], ups[1:]):  # three 2x upsamplings
            layers += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(cin, cout, 3, padding=1, padding_mode="reflect"),
                _norm(cout),
                nn.ReLU(True),
            ]
        layers += [nn.Conv2d(ups[-1], channels, 7, padding=3, padding_mode="reflect"), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        h, w = x.shape[-2:]
        if h % MULTIPLE or w % MULTIPLE:
            raise ValueError(f"the generator needs sides that are multiples of {MULTIPLE}, got {w}x{h}")
        return self.net(x)


class PatchDiscriminator(nn.Module):
    """PatchGAN (pix2pix): one logit per overlapping patch; ``layers`` stride-2 convolutions."""

    def __init__(self, width: int = 64, layers: int = 3, channels: int = 3):
        super().__init__()
        seq = [nn.Conv2d(channels, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        c = width
        for n in range(1, layers):
            cout = width * min(2**n, 8)
            seq += [nn.Conv2d(c, cout, 4, stride=2, padding=1), _norm(cout), nn.LeakyReLU(0.2, True)]
            c = cout
        cout = width * min(2**layers, 8)
        seq += [
            nn.Conv2d(c, cout, 4, stride=1, padding=1),
            _norm(cout),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(cout, 1, 4, stride=1, padding=1),
        ]
        self.net = nn.Sequential(*seq)

    def forward(self, x):
        return self.net(x)


def _init_weights(module: nn.Module, generator: torch.Generator) -> None:
    """pix2pix's 'normal' init: conv weights N(0, 0.02), biases 0; from ``generator`` (reproducible)."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.copy_(torch.randn(m.weight.shape, generator=generator) * 0.02)
                if m.bias is not None:
                    m.bias.zero_()


def build_networks(config: ExpandConfig, device="cpu") -> tuple[ExpansionGenerator, PatchDiscriminator]:
    gen = torch.Generator().manual_seed(config.seed)
    g = ExpansionGenerator(config.width, config.blocks)
    d = PatchDiscriminator(config.d_width, config.d_layers)
    _init_weights(g, gen)
    _init_weights(d, gen)
    return g.to(device), d.to(device)
