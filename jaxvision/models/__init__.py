"""Complete architectures, one file per method, in a name registry."""

from jaxvision.models.registry import MODELS, create_model, list_models, register_model
from jaxvision.models.resnet import (ResNet, ResNet18, ResNet34, ResNet50, ResNeXt50_32x4d,
                                     ResNeXt101_32x8d)
from jaxvision.models.linearity_iqa import LevelEncoder, LinearityIQA
from jaxvision.models.colorization import ZhangColorization
from jaxvision.models.mambatraj import (AttentionSSMBlock, MambaTraj, MambaTrajDecoder,
                                        MambaTrajEncoder, SSMBlock)
from jaxvision.models import convert
from jaxvision.models.spectral_ridge import SpectralRidge, fit_spectral_ridge  # noqa: F401
from jaxvision.models.mst_plus_plus import MSTPlusPlus
from jaxvision.models.acc_net import ACCNet

__all__ = ["MODELS", "create_model", "list_models", "register_model",
           "ResNet", "ResNet18", "ResNet34", "ResNet50", "ResNeXt50_32x4d", "ResNeXt101_32x8d",
           "LevelEncoder", "LinearityIQA", "convert",
           "AttentionSSMBlock", "MambaTraj", "MambaTrajDecoder", "MambaTrajEncoder", "SSMBlock",
           "ZhangColorization", "MSTPlusPlus", "ACCNet"]
