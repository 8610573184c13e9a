"""Config loading, defaults, overrides and their errors."""

import pytest

from jaxvision.train import config as config_lib


def test_quickstart_loads_by_name_and_variant():
  full = config_lib.load_config("quickstart")
  tiny = config_lib.load_config("quickstart:tiny")
  assert full.model_name == "resnet18" and full.model.stem == "cifar"
  assert full.data.name == "digits"
  assert tiny.total_steps < full.total_steps
  # Fields the file does not set come from the defaults.
  assert full.sharding.strategy == "replicate"
  assert config_lib.load_config(None).to_dict() == full.to_dict()


def test_load_by_path(tmp_path):
  path = tmp_path / "exp.py"
  path.write_text("import ml_collections\n"
                  "def get_config(arg=None):\n"
                  "  c = ml_collections.ConfigDict()\n"
                  "  c.total_steps = int(arg or 7)\n"
                  "  return c\n")
  assert config_lib.load_config(str(path)).total_steps == 7
  assert config_lib.load_config(f"{path}:11").total_steps == 11


def test_unknown_field_in_file_is_an_error(tmp_path):
  path = tmp_path / "typo.py"
  path.write_text("def get_config():\n  return {'totl_steps': 5}\n")
  with pytest.raises(KeyError, match="totl_steps"):
    config_lib.load_config(str(path))


def test_missing_file_and_bad_variant():
  with pytest.raises(FileNotFoundError, match="no_such_config"):
    config_lib.load_config("no_such_config")
  with pytest.raises(ValueError, match="unknown config argument 'huge'"):
    config_lib.load_config("quickstart:huge")


def test_overrides_apply_with_types():
  c = config_lib.load_config("quickstart:tiny")
  config_lib.apply_overrides(c, [("total_steps", "12"), ("optimizer.learning_rate", "1e-3"),
                                 ("optimizer.name", "adamw"), ("progress_bar", "False"),
                                 ("model.width", "16"), ("mesh.axes", "(('data', 4),)")])
  assert c.total_steps == 12 and c.optimizer.learning_rate == pytest.approx(1e-3)
  assert c.optimizer.name == "adamw" and c.progress_bar is False
  assert c.model.width == 16 and c.mesh.axes == (("data", 4),)
  config_lib.apply_overrides(c, [("optimizer.learning_rate", "1")])  # int into a float field
  assert c.optimizer.learning_rate == 1.0


@pytest.mark.parametrize("field,value,error,match", [
    ("total_stepz", "3", KeyError, "total_stepz"),
    ("optimizer.lr", "0.1", KeyError, "optimizer.lr"),
    ("nosection.x", "1", KeyError, "nosection"),
    ("total_steps", "many", TypeError, "total_steps"),
    ("total_steps", "2.5", TypeError, "total_steps"),
    ("progress_bar", "1", TypeError, "progress_bar"),
    ("optimizer", "1", TypeError, "section"),
    ("total_steps", "0", ValueError, "total_steps"),
    ("sharding.strategy", "zero3", ValueError, "sharding.strategy"),
])
def test_bad_overrides_name_the_field(field, value, error, match):
  c = config_lib.load_config("quickstart:tiny")
  with pytest.raises(error, match=match):
    config_lib.apply_overrides(c, [(field, value)])


def test_save_and_read_round_trip(tmp_path):
  c = config_lib.load_config("quickstart")
  config_lib.save_config(c, tmp_path / "config.json")
  back = config_lib.read_config(tmp_path / "config.json")
  assert back.to_dict() == c.to_dict()
  assert not list(tmp_path.glob("*.tmp"))


def test_list_configs_finds_the_shipped_ones():
  names = config_lib.list_configs()
  assert {"quickstart", "classification/cifar", "classification/imagenet"} <= set(names)


def test_parse_arg_words_keys_and_errors():
  parse = config_lib.parse_arg
  assert parse(None, choices={"data": ("a", "b")}, batch=8, tiny=False) == dict(
      data="a", batch=8, tiny=False)
  assert parse("b, batch=32,tiny", choices={"data": ("a", "b")}, batch=8, tiny=False) == dict(
      data="b", batch=32, tiny=True)
  assert parse("lr=0.5,tiny=false", lr=0.1, tiny=True) == dict(lr=0.5, tiny=False)
  with pytest.raises(ValueError, match="'c'.*accepted: a, b"):
    parse("c", choices={"data": ("a", "b")})
  with pytest.raises(ValueError, match="'batch' expects int"):
    parse("batch=many", batch=8)


@pytest.mark.parametrize("spec,expected", [
    ("classification/cifar", dict(model_name="resnet18", data="cifar10", batch=128)),
    ("classification/cifar:cifar100,batch=512", dict(data="cifar100", batch=512)),
    ("classification/imagenet", dict(model_name="resnet50", data="imagenet2012", batch=1024)),
    ("classification/imagenet:resnet18,batch=256", dict(model_name="resnet18", batch=256)),
])
def test_full_scale_configs_resolve(spec, expected):
  c = config_lib.load_config(spec)
  if "model_name" in expected:
    assert c.model_name == expected["model_name"]
  if "data" in expected:
    assert c.data.name == expected["data"]
  assert c.data.global_batch_size == expected["batch"]
  # The learning rate follows the linear scaling rule and warmup is 5 epochs.
  base = 128 if "cifar" in spec else 256
  assert c.optimizer.learning_rate == pytest.approx(0.1 * expected["batch"] / base)
  assert 0 < c.optimizer.warmup_steps < c.total_steps


def test_svd_treatments_map_to_the_pre_svd_layer():
  dbn = config_lib.load_config("svd_conditioning/cifar_dbn:nog_ow_olr")
  assert dbn.model.stem_conv == "orthogonal" and dbn.model.stem_norm == "decorrelated"
  assert dbn.optimizer.kwargs.nog == "stem_conv" and dbn.optimizer.kwargs.olr == "stem_conv"
  gcp = config_lib.load_config("svd_conditioning/imagenet_gcp:sn")
  assert gcp.model.pooling_reduce_conv == "spectral_norm" and "stem_conv" not in gcp.model
  ol = config_lib.load_config("svd_conditioning/imagenet_gcp:ol")
  assert ol.regularizers.orthogonality.pattern == "gcp_reduce_conv/kernel"
  ow = config_lib.load_config("svd_conditioning/imagenet_gcp:nog_ow")
  assert ow.model.pooling_reduce_conv == "orthogonal" and "stem_conv" not in ow.model
  assert ow.optimizer.kwargs.nog == "gcp_reduce_conv"
