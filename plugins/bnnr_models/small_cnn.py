"""``small_cnn``: a compact CNN for small images, with a clean penultimate embedding."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    """Three conv blocks (``width``, ``2*width``, ``4*width`` channels), global average pooling,
    and one linear layer.

    Two 2x2 max-pools sit between the blocks, so an 8x8 input reaches the last block at 2x2 and
    a 32x32 input at 8x8; global pooling makes any size of at least 4x4 work.

    * ``features(x)`` returns the penultimate embedding, shape ``(N, embedding_dim)``; hook it
      (or call it) to get embeddings.
    * ``classifier`` is the final ``nn.Linear(embedding_dim, num_classes)``.
    * ``features.block3`` is the last convolutional block (a natural saliency target layer).
    """

    def __init__(self, *, num_classes: int, in_channels: int = 3, width: int = 32) -> None:
        super().__init__()
        if num_classes < 1 or in_channels < 1 or width < 1:
            raise ValueError(
                "num_classes, in_channels and width must be positive; got "
                f"{num_classes}, {in_channels}, {width}"
            )
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.embedding_dim = 4 * width
        self.features = nn.Sequential(
            OrderedDict(
                block1=_conv_block(in_channels, width),
                pool1=nn.MaxPool2d(2),
                block2=_conv_block(width, 2 * width),
                pool2=nn.MaxPool2d(2),
                block3=_conv_block(2 * width, 4 * width),
                pool=nn.AdaptiveAvgPool2d(1),
                flatten=nn.Flatten(),
            )
        )
        self.classifier = nn.Linear(self.embedding_dim, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` for images ``(N, in_channels, H, W)``, H and W >= 4."""
        return self.classifier(self.features(images))
