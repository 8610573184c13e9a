"""Top-k correctness against numpy's stable argsort, ties and masks."""

import numpy as np
import pytest

from jaxvision.metrics import accuracy, topk_correct


@pytest.mark.parametrize("k", [1, 2, 5])
def test_topk_matches_numpy(k):
  rng = np.random.default_rng(0)
  logits = rng.integers(0, 4, size=(50, 6)).astype(np.float32)  # many ties
  labels = rng.integers(0, 6, size=50)
  # Stable descending order: equal logits keep ascending class index.
  order = np.argsort(-logits, axis=-1, kind="stable")[:, :k]
  expected = (order == labels[:, None]).any(-1).astype(np.float32)
  np.testing.assert_array_equal(topk_correct(logits, labels, k), expected)


def test_accuracy_with_mask_ignores_padding():
  logits = np.eye(4, dtype=np.float32)
  labels = np.array([0, 1, 0, 0])
  assert float(accuracy(logits, labels)) == pytest.approx(0.5)
  assert float(accuracy(logits, labels, mask=np.array([1, 1, 0, 0.]))) == pytest.approx(1.0)


def test_bad_k():
  with pytest.raises(ValueError, match="k"):
    topk_correct(np.zeros((2, 3)), np.zeros(2, int), 4)
