"""torch -> Flax weight conversion: round trips through torchvision-named state_dicts built
from jaxvision shapes (no torch needed), clear errors for missing / unexpected keys and wrong
shapes, and -- when torch and torchvision are importable -- numerical equality with
torchvision's resnet18 / resnext50_32x4d and with the authors' LinearityIQA layout."""

import re
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvision.models import convert, create_model

TINY_IQA = dict(backbone="resnext50_32x4d", backbone_width=16, stem="cifar",
                encoder_widths=(16, 8, 4),
                backbone_kwargs={"stage_sizes": (2, 1, 1, 1), "groups": 4, "width_per_group": 8})


def _abstract(model, shape=(1, 32, 32, 3)):
  return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros(shape)))


def _random_like(abstract, seed=0):
  """Concrete random NumPy variables with the shapes of ``abstract`` (no init compile)."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda x: rng.standard_normal(x.shape).astype(np.float32), abstract)


def _flat(tree, prefix=()):
  for key, value in tree.items():
    if isinstance(value, dict):
      yield from _flat(value, prefix + (key,))
    else:
      yield prefix + (key,), value


# The inverse mapping (jaxvision -> torchvision names and layouts), written independently of
# jaxvision.models.convert.
_BN_NAMES = {"scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}


def _torch_module(path):
  if path[0] == "stem_conv":
    return "conv1"
  if path[0] == "stem_bn":
    return "bn1"
  if path[0] == "head":
    return "fc"
  stage, block = re.fullmatch(r"stage(\d)_block(\d+)", path[0]).groups()
  layer = {"proj_conv": "downsample.0", "proj_bn": "downsample.1"}.get(path[1], path[1])
  return f"layer{stage}.{int(block) - 1}.{layer}"


def _to_torchvision(variables):
  state = {}
  for collection in ("params", "batch_stats"):
    for path, value in _flat(variables[collection]):
      module, leaf = _torch_module(path), path[-1]
      if leaf == "kernel" and value.ndim == 4:
        state[f"{module}.weight"] = np.transpose(value, (3, 2, 0, 1))  # HWIO -> OIHW
      elif leaf == "kernel":
        state[f"{module}.weight"] = value.T
      elif module == "fc":
        state["fc.bias"] = value
      else:
        state[f"{module}.{_BN_NAMES[leaf]}"] = value
        state[f"{module}.num_batches_tracked"] = np.array(7)
  return state


def _assert_trees_equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("name,kwargs", [
    ("resnet18", dict(width=8, stage_sizes=(2, 1, 1))),
    ("resnext50_32x4d", dict(width=16, groups=4, width_per_group=8, stage_sizes=(2, 1))),
    ("resnet50", dict(width=8, num_classes=None)),
])
def test_round_trip_through_a_torchvision_state_dict(name, kwargs):
  kwargs.setdefault("num_classes", 10)
  abstract = _abstract(create_model(name, **kwargs))
  variables = _random_like(abstract)
  state = _to_torchvision(variables)
  if kwargs["num_classes"] is None:  # a headless target ignores the ImageNet classifier
    state.update({"fc.weight": np.zeros((1000, 2048)), "fc.bias": np.zeros(1000)})
  else:
    assert state["fc.weight"].shape == (10, variables["params"]["head"]["kernel"].shape[0])
  assert "layer2.0.downsample.0.weight" in state and "layer1.0.bn1.running_var" in state
  converted = convert.convert_torchvision_resnet(state, abstract)
  _assert_trees_equal(converted, variables)
  assert all(x.dtype == np.float32 for x in jax.tree.leaves(converted))


def test_grouped_conv_kernel_layout():
  # torch (O, I/groups, kH, kW) -> Flax HWIO (kH, kW, I/groups, O).
  model = create_model("resnext50_32x4d", width=16, groups=4, width_per_group=8,
                       stage_sizes=(1,), num_classes=None)
  abstract = _abstract(model)
  variables = _random_like(abstract)
  state = _to_torchvision(variables)
  assert state["layer1.0.conv2.weight"].shape == (8, 2, 3, 3)
  converted = convert.convert_torchvision_resnet(state, abstract)
  np.testing.assert_array_equal(converted["params"]["stage1_block1"]["conv2"]["kernel"],
                                np.transpose(state["layer1.0.conv2.weight"], (2, 3, 1, 0)))


def test_missing_unexpected_and_misshapen_keys_raise_clear_errors():
  abstract = _abstract(create_model("resnet18", width=8, stage_sizes=(2, 1), num_classes=5))
  state = _to_torchvision(_random_like(abstract))

  missing = {k: v for k, v in state.items() if k != "layer1.0.conv1.weight"}
  with pytest.raises(KeyError, match=r"missing.*layer1\.0\.conv1\.weight.*stage1_block1/conv1"):
    convert.convert_torchvision_resnet(missing, abstract)

  extra = {**state, "layer3.0.conv1.weight": np.zeros((16, 16, 3, 3))}
  with pytest.raises(KeyError, match=r"unexpected.*layer3\.0\.conv1\.weight"):
    convert.convert_torchvision_resnet(extra, abstract)
  convert.convert_torchvision_resnet(extra, abstract, strict=False)

  wrong = {**state, "fc.weight": np.zeros((1000, 16))}
  with pytest.raises(ValueError, match=r"fc\.weight -> params/head/kernel: expected \(16, 5\).*"
                                       r"\(1000, 16\)"):
    convert.convert_torchvision_resnet(wrong, abstract)

  # A target with layers torchvision lacks (ZCA-whitening stem): named, not silently skipped.
  small = dict(width=8, stage_sizes=(1,), stem="cifar", num_classes=5)
  plain = _to_torchvision(_random_like(_abstract(create_model("resnet18", **small))))
  whitened = _abstract(create_model("resnet18", stem_norm="decorrelated", **small))
  with pytest.raises(ValueError, match="no torchvision equivalent.*stem_bn"):
    convert.convert_torchvision_resnet(plain, whitened)


def test_backbone_helper_fills_only_the_backbone_prefix():
  model = create_model("linearity_iqa", **TINY_IQA)
  variables = _random_like(_abstract(model), seed=1)
  backbone = create_model("resnext50_32x4d", num_classes=None, width=16, stem="cifar",
                          **TINY_IQA["backbone_kwargs"])
  torch_like = _random_like(_abstract(backbone), seed=2)
  state = _to_torchvision(torch_like)
  state.update({"fc.weight": np.zeros((1000, 512)), "fc.bias": np.zeros(1000)})  # ignored
  merged = convert.convert_torchvision_backbone(state, variables)
  for collection in ("params", "batch_stats"):
    _assert_trees_equal(merged[collection]["backbone"], torch_like[collection])
    for key in variables[collection]:
      if key != "backbone":
        assert merged[collection][key] is variables[collection][key]
  assert variables["params"]["backbone"] is not merged["params"]["backbone"]  # not in place
  with pytest.raises(KeyError, match="'trunk'"):
    convert.convert_torchvision_backbone(state, variables, prefix="trunk")
  with pytest.raises(ValueError, match="expected shape"):
    bad = jax.tree.map(lambda x: x[..., :1], torch_like)
    convert.merge_variables(variables, bad)


def _to_authors(variables):
  """The authors' IQAModel names: features.{0,1,4..7}, dr6/dr7, regr6/regr7, regression."""
  state = {}
  backbone = {c: variables[c]["backbone"] for c in ("params", "batch_stats")}
  for key, value in _to_torchvision(backbone).items():
    key = re.sub(r"^layer(\d)", lambda m: f"features.{int(m.group(1)) + 3}", key)
    key = re.sub(r"^conv1\.", "features.0.", re.sub(r"^bn1\.", "features.1.", key))
    state[key] = value
  for level, torch_name in (("conv4", "dr6"), ("conv5", "dr7")):
    for collection in ("params", "batch_stats"):
      for (layer, leaf), value in _flat(variables[collection][f"encoder_{level}"]):
        index = 2 * (int(layer[-1]) - 1) + layer.startswith("bn")
        name = {"kernel": "weight"}.get(leaf, _BN_NAMES.get(leaf))
        state[f"{torch_name}.{index}.{name}"] = value.T if leaf == "kernel" else value
  for flax_name, torch_name in (("aux_head_conv4", "regr6"), ("aux_head_conv5", "regr7"),
                                ("head", "regression")):
    state[f"{torch_name}.weight"] = variables["params"][flax_name]["kernel"].T
    state[f"{torch_name}.bias"] = variables["params"][flax_name]["bias"]
  return {f"module.{k}": v for k, v in state.items()}  # as saved from DataParallel


def test_authors_linearity_iqa_checkpoint_round_trip():
  abstract = _abstract(create_model("linearity_iqa", **TINY_IQA))
  variables = _random_like(abstract, seed=3)
  state = _to_authors(variables)
  assert "module.dr6.4.weight" in state and "module.features.5.0.downsample.1.running_var" in state
  _assert_trees_equal(convert.convert_linearity_iqa_checkpoint(state, abstract), variables)
  with pytest.raises(KeyError, match=r"regression\.weight"):
    convert.convert_linearity_iqa_checkpoint(
        {k: v for k, v in state.items() if "regression.weight" not in k}, abstract)


def test_load_torch_checkpoint_errors_without_torch(tmp_path, monkeypatch):
  with pytest.raises(FileNotFoundError, match="nope.pth"):
    convert.load_torch_checkpoint(tmp_path / "nope.pth")
  path = tmp_path / "weights.pth"
  path.write_bytes(b"not a checkpoint")
  monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
  with pytest.raises(ImportError, match=r'pip install "jaxvision\[torch\]"'):
    convert.load_torch_checkpoint(path)


def test_convert_module_does_not_import_torch():
  import subprocess  # pylint: disable=import-outside-toplevel
  code = "import sys, jaxvision.models.convert; print('torch' in sys.modules)"
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "False"


# --- numerical equality with PyTorch (skipped unless torch and torchvision are installed) ---

def _randomise_batchnorm(torch, module, seed):
  generator = torch.Generator().manual_seed(seed)
  for m in module.modules():
    if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
      n = m.num_features
      m.weight.data = 0.5 + torch.rand(n, generator=generator)
      m.bias.data = 0.2 * torch.randn(n, generator=generator)
      m.running_mean.data = 0.2 * torch.randn(n, generator=generator)
      m.running_var.data = 0.5 + torch.rand(n, generator=generator)


@pytest.mark.parametrize("name", ["resnet18", "resnext50_32x4d"])
def test_matches_torchvision_in_eval_mode(name, tmp_path):
  torch = pytest.importorskip("torch")
  torchvision = pytest.importorskip("torchvision")
  torch.manual_seed(0)
  net = getattr(torchvision.models, name)(weights=None).eval()
  _randomise_batchnorm(torch, net, seed=1)
  path = tmp_path / f"{name}.pth"
  torch.save(net.state_dict(), path)
  state = convert.load_torch_checkpoint(path)
  model = create_model(name)
  variables = convert.convert_torchvision_resnet(state, _abstract(model, (1, 64, 64, 3)))
  x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
  with torch.no_grad():
    expected = net(torch.from_numpy(x)).numpy()
  out = jax.jit(model.apply)(variables, jnp.asarray(x.transpose(0, 2, 3, 1)))
  scale = np.abs(expected).max()
  np.testing.assert_allclose(np.asarray(out) / scale, expected / scale, atol=1e-4)


def test_matches_the_authors_linearity_iqa_in_eval_mode():
  """The authors' IQAModel structure (IQAmodel.py, pool='avg', P6 = P7 = 1, use_bn_end
  False) rebuilt in torch over a torchvision resnet18, converted and compared."""
  torch = pytest.importorskip("torch")
  torchvision = pytest.importorskip("torchvision")
  nn = torch.nn
  torch.manual_seed(0)

  def encoder(c):
    return nn.Sequential(nn.Linear(c, 1024), nn.BatchNorm1d(1024), nn.Linear(1024, 256),
                         nn.BatchNorm1d(256), nn.Linear(256, 64), nn.BatchNorm1d(64), nn.ReLU())

  class IQAModel(nn.Module):

    def __init__(self):
      super().__init__()
      trunk = list(torchvision.models.resnet18(weights=None).children())[:-2]
      self.features = nn.Sequential(*trunk)
      self.dr6, self.dr7 = encoder(256), encoder(512)
      self.regr6, self.regr7 = nn.Linear(64, 1), nn.Linear(64, 1)
      self.regression = nn.Linear(128, 1)

    def forward(self, x):
      f, pq = [], []
      for i, layer in enumerate(self.features):
        x = layer(x)
        if i in (6, 7):
          code = (self.dr6 if i == 6 else self.dr7)(x.mean(dim=(2, 3)))
          f.append(code)
          pq.append((self.regr6 if i == 6 else self.regr7)(code))
      pq.append(self.regression(torch.cat(f, dim=1)))
      return pq

  net = IQAModel().eval()
  _randomise_batchnorm(torch, net, seed=2)
  model = create_model("linearity_iqa", backbone="resnet18")
  variables = convert.convert_linearity_iqa_checkpoint(
      {k: v for k, v in net.state_dict().items()}, _abstract(model, (1, 64, 64, 3)))
  x = np.random.default_rng(1).standard_normal((3, 3, 64, 64)).astype(np.float32)
  with torch.no_grad():
    aux6, aux7, main = [t.numpy()[:, 0] for t in net(torch.from_numpy(x))]
  out = np.asarray(jax.jit(model.apply)(variables, jnp.asarray(x.transpose(0, 2, 3, 1))))
  expected = np.stack([main, aux6, aux7], axis=1)  # jaxvision: main score first
  scale = np.abs(expected).max()
  np.testing.assert_allclose(out / scale, expected / scale, atol=1e-4)
