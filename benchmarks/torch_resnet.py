"""The CIFAR-stem ResNet-18 in PyTorch (NCHW), for side-by-side speed comparisons only.

Same topology as ``jaxvision.models.ResNet18(stem="cifar")``: 3x3/1 stem conv,
BN, ReLU; basic blocks (2, 2, 2, 2) at widths 64..512 with 1x1 projection
shortcuts; global average pool; linear head.
"""

import torch
from torch import nn


class BasicBlock(nn.Module):

  def __init__(self, cin: int, cout: int, stride: int):
    super().__init__()
    self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(cout)
    self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(cout)
    self.proj = None
    if stride != 1 or cin != cout:
      self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

  def forward(self, x):
    y = torch.relu(self.bn1(self.conv1(x)))
    y = self.bn2(self.conv2(y))
    return torch.relu(y + (x if self.proj is None else self.proj(x)))


class CifarResNet18(nn.Module):

  def __init__(self, num_classes: int = 10, width: int = 64, in_channels: int = 3):
    super().__init__()
    self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False),
                              nn.BatchNorm2d(width), nn.ReLU())
    blocks, cin = [], width
    for i in range(4):
      cout = width * 2**i
      for j in range(2):
        blocks.append(BasicBlock(cin, cout, 2 if i > 0 and j == 0 else 1))
        cin = cout
    self.blocks = nn.Sequential(*blocks)
    self.head = nn.Linear(cin, num_classes)

  def forward(self, x):
    return self.head(self.blocks(self.stem(x)).mean(dim=(2, 3)))
