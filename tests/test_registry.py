"""Registry round trips for models, datasets, losses, optimizers and tasks."""

import pytest

from jaxvision import data, losses, models, optim
from jaxvision.registry import Registry
from jaxvision.train import tasks


def test_registry_register_get_list_and_errors():
  reg = Registry("widget")

  @reg.register("Alpha")
  def alpha():
    return "a"

  assert reg.get("alpha") is alpha and reg.get("ALPHA")() == "a"
  assert reg.list() == ["alpha"] and reg.list("b*") == [] and "alpha" in reg
  with pytest.raises(KeyError, match="unknown widget 'beta'.*alpha"):
    reg.get("beta")
  with pytest.raises(ValueError, match="already registered"):
    reg.register("alpha")(lambda: None)
  with pytest.raises(TypeError, match="must be a str"):
    reg.get(3)


def test_every_registry_round_trips():
  assert {"resnet18", "resnet34", "resnet50"} <= set(models.list_models())
  assert models.list_models("resnet5*") == ["resnet50"]
  for name in models.list_models():
    assert models.MODELS.get(name) is models.MODELS.get(name.upper())
  assert {"digits", "synthetic", "cifar10", "cifar100", "imagenet2012"} <= set(
      data.list_datasets())
  assert losses.get_loss("softmax_cross_entropy") is losses.softmax_cross_entropy
  assert {"sgd", "adam", "adamw"} <= set(optim.list_optimizers())
  assert "classification" in tasks.TASKS.list()


def test_factories_name_bad_arguments():
  with pytest.raises(KeyError, match="unknown model 'resnet19'"):
    models.create_model("resnet19")
  with pytest.raises(TypeError, match="create_model\\('resnet18'\\).*widht"):
    models.create_model("resnet18", widht=3)
  with pytest.raises(TypeError, match="create_dataset\\('digits'\\).*colour"):
    data.create_dataset("digits", "train", colour=True)
  with pytest.raises(ValueError, match="split"):
    data.create_dataset("digits", "valid")
  with pytest.raises(ValueError, match="'digits' has no split 'validation'.*'train', 'test'"):
    data.create_dataset("digits", "validation")
  assert data.dataset_splits("synthetic_iqa") == ("train", "validation", "test")
