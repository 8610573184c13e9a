"""Complete architectures, one file per method, in a name registry."""

from jaxvision.models.registry import MODELS, create_model, list_models, register_model
from jaxvision.models.resnet import ResNet, ResNet18, ResNet34, ResNet50
from jaxvision.models.mambatraj import (AttentionSSMBlock, MambaTraj, MambaTrajDecoder,
                                        MambaTrajEncoder, SSMBlock)

__all__ = ["MODELS", "create_model", "list_models", "register_model",
           "ResNet", "ResNet18", "ResNet34", "ResNet50",
           "AttentionSSMBlock", "MambaTraj", "MambaTrajDecoder", "MambaTrajEncoder", "SSMBlock"]
