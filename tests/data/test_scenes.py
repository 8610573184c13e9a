"""Synthetic driving scenes (issue 4; spec icpr-13 Sec. 4): format, determinism, physics,
augmentation and the input pipeline."""

import functools

import numpy as np
import pytest

from jaxvision.data import (TrainIterator, av2, create_dataset, eval_batches, list_datasets,
                            scenes)

H, F = 10, 12
T = H + F
A, M = 8, 64
NOISE = 0.05  # default position noise (m)


@functools.lru_cache(maxsize=None)
def _batch(n=40, **kwargs):
  src = create_dataset("synthetic_scenes", "train", **kwargs)
  return src.get(np.arange(n))


def _clean():
  """Noise-free observations, speeds in a narrow band."""
  return _batch(32, position_noise=0.0, speed_noise=0.0, speed_range=(6.0, 8.0))


def _segment_distance(points, batch, i):
  m = batch["map_mask"][i] > 0
  return av2.point_segment_distance(points, batch["map_start"][i][m],
                                    batch["map_end"][i][m]).min(1)


def test_fields_have_the_contract_shapes_dtypes_and_padding():
  assert "synthetic_scenes" in list_datasets()
  src = create_dataset("synthetic_scenes", "train", num_examples=50)
  assert len(src) == 50 and src.info.num_examples == 50
  assert src.info.num_classes == 0 and src.info.image_shape == ()
  assert len(create_dataset("synthetic_scenes", "test")) < len(
      create_dataset("synthetic_scenes", "train"))
  b = _batch()
  n = 40
  sizes = {"A": A, "T": T, "M": M}
  assert set(b) == set(av2.SCENE_FIELDS)
  for name, (dtype, shape) in av2.SCENE_FIELDS.items():
    assert b[name].dtype == dtype, name
    assert b[name].shape == (n,) + tuple(sizes.get(d, d) for d in shape), name
  for key in ("agent_valid", "agent_mask", "agent_predict", "map_mask"):
    assert set(np.unique(b[key])) <= {0.0, 1.0}, key
  mask, valid = b["agent_mask"], b["agent_valid"]
  # Used slots first; padding slots and unobserved steps are all zero.
  assert np.all(np.diff(mask, axis=1) <= 0) and np.all(np.diff(b["map_mask"], axis=1) <= 0)
  assert np.all(valid <= mask[..., None]) and np.all(b["agent_predict"] <= mask)
  off = valid == 0
  assert not b["agent_position"][off].any() and not b["agent_velocity"][off].any()
  assert not b["agent_heading"][off].any()
  assert not b["agent_type"][mask == 0].any()
  pad = b["map_mask"] == 0
  assert not b["map_start"][pad].any() and not b["map_end"][pad].any()
  assert not b["map_type"][pad].any()
  kinds = {av2.AV2_OBJECT_TYPES.index(t) for t in ("vehicle", "bus", "cyclist", "pedestrian")}
  assert set(np.unique(b["agent_type"][mask > 0])) <= kinds
  assert av2.AV2_OBJECT_TYPES.index("pedestrian") in b["agent_type"][mask > 0]
  assert set(np.unique(b["map_type"][~pad])) == {av2.AV2_MAP_TYPES.index("VEHICLE"),
                                                 av2.AV2_MAP_TYPES.index("PEDESTRIAN")}
  assert mask.sum(1).min() >= 2 and mask.sum(1).mean() > A / 2
  assert np.all(np.abs(b["agent_heading"]) <= np.pi)


def test_scenes_are_deterministic_in_seed_split_and_index():
  a = create_dataset("synthetic_scenes", "train", num_examples=20)
  b = create_dataset("synthetic_scenes", "train", num_examples=20)
  one, pair = a.get(np.array([3])), b.get(np.array([5, 3]))
  for key in av2.SCENE_FIELDS:
    np.testing.assert_array_equal(one[key][0], pair[key][1], err_msg=key)
  assert not np.array_equal(pair["map_start"][0], pair["map_start"][1])
  other_seed = create_dataset("synthetic_scenes", "train", num_examples=20, seed=1)
  assert not np.array_equal(other_seed.get(np.array([3]))["map_start"], one["map_start"])
  test = create_dataset("synthetic_scenes", "test", num_examples=20)
  assert not np.array_equal(test.get(np.array([3]))["map_start"], one["map_start"])
  # Training seeds without augment_se2 change nothing.
  seeded = a.get(np.array([3]), np.array([12345], np.uint64))
  np.testing.assert_array_equal(seeded["agent_position"], one["agent_position"])


def test_map_segments_are_short_and_ordered_from_the_focal_agent():
  b = _clean()
  for i in range(len(b["map_mask"])):
    m = b["map_mask"][i] > 0
    length = np.linalg.norm(b["map_end"][i][m] - b["map_start"][i][m], axis=-1)
    assert length.max() <= 5.0 + 1e-4 and length.min() > 0.1
    d = av2.point_segment_distance(b["agent_position"][i, 0, H - 1][None],
                                   b["map_start"][i][m], b["map_end"][i][m])[0]
    assert np.all(np.diff(d) >= -1e-3)


def test_agents_stay_on_lanes():
  b = _batch()
  d = np.concatenate([_segment_distance(b["agent_position"][i][b["agent_valid"][i] > 0], b, i)
                      for i in range(len(b["agent_mask"]))])
  # Every observation lies within scenes.NEAR_LANE (+ noise) of a kept segment, inside a lane
  # width (>= 3.2 m); nearly all lie on a lane centre (weaving, cyclists keep right).
  assert d.max() < scenes.NEAR_LANE + 5 * NOISE < 3.2
  assert d.mean() < 0.4 and np.percentile(d, 90) < 0.8


def test_velocities_are_derivatives_of_positions_and_speeds_are_in_range():
  b = _clean()
  pos, vel, valid = b["agent_position"], b["agent_velocity"], b["agent_valid"] > 0
  inner = valid[..., :-2] & valid[..., 1:-1] & valid[..., 2:]
  central = (pos[..., 2:, :] - pos[..., :-2, :]) / (2 * scenes.DT)
  np.testing.assert_allclose(central[inner], vel[..., 1:-1, :][inner], atol=2e-3)
  speed = np.linalg.norm(vel, axis=-1)
  kind = np.broadcast_to(b["agent_type"][..., None], speed.shape)
  drive = valid & np.isin(kind, [scenes.VEHICLE, scenes.BUS])
  lateral = 2 * np.pi * np.sqrt(2) * 0.15 / scenes.LATERAL_PERIOD[0]  # weaving speed bound
  assert speed[drive].max() <= 8.0 + lateral
  assert speed[valid & (kind == scenes.PEDESTRIAN)].max() <= scenes.PEDESTRIAN_SPEED[1] + lateral
  moving = drive & (speed > 0.5)
  # Constant desired speed; only curves (braking ahead of turns) slow vehicles down.
  assert np.mean((speed[moving] > 5.5) & (speed[moving] < 8.5)) > 0.6
  assert speed[moving].min() > 1.0
  accel = np.linalg.norm(np.diff(vel, axis=-2), axis=-1) / scenes.DT
  assert accel[drive[..., 1:] & drive[..., :-1]].max() < 6.0  # m/s^2


def test_headings_follow_the_velocity_of_moving_vehicles():
  b = _batch()
  vel, valid = b["agent_velocity"], b["agent_valid"] > 0
  speed = np.linalg.norm(vel, axis=-1)
  kind = np.broadcast_to(b["agent_type"][..., None], speed.shape)
  moving = valid & (kind == scenes.VEHICLE) & (speed > 2.0)
  err = scenes.wrap_angle(b["agent_heading"] - np.arctan2(vel[..., 1], vel[..., 0]))
  assert moving.sum() > 500 and np.abs(err[moving]).max() < 0.1


def test_valid_masks_focal_and_scored_agents_and_ordering():
  b = _clean()
  valid, mask, predict = b["agent_valid"] > 0, b["agent_mask"] > 0, b["agent_predict"] > 0
  assert valid[:, 0].all() and predict[:, 0].all()
  assert np.all(b["agent_type"][:, 0] == scenes.VEHICLE)
  # Scored agents are observed from the current step on; every agent has some history.
  assert np.all(valid[:, :, H - 1:][predict])
  assert np.all(valid[:, :, :H].any(-1)[mask])
  others = mask[:, 1:]
  assert (~valid[:, 1:][others]).any(-1).sum() > 10  # some appear late or disappear
  assert (~predict[:, 1:] & others).sum() > 5
  # Focal, then scored, then the rest, each group by distance to the focal agent at H - 1.
  for i in range(len(mask)):
    used = np.flatnonzero(mask[i])
    assert np.all(np.diff(predict[i, used[1:]].astype(int)) <= 0)
    focal = b["agent_position"][i, 0, H - 1]
    for group in (predict[i], ~predict[i]):
      slots = [a for a in used[1:] if group[a]]
      last = [np.flatnonzero(valid[i, a, :H])[-1] for a in slots]
      d = [np.linalg.norm(b["agent_position"][i, a, t] - focal) for a, t in zip(slots, last)]
      assert np.all(np.diff(d) >= -1e-3)


def test_focal_agents_go_straight_or_turn_at_intersections():
  b = _batch()
  turn = np.degrees(scenes.wrap_angle(b["agent_heading"][:, 0, -1] - b["agent_heading"][:, 0,
                                                                                          H - 1]))
  assert (np.abs(turn) < 5).sum() >= 8 and (turn > 20).sum() >= 2 and (turn < -20).sum() >= 2


def test_agents_do_not_collide():
  b = _batch()
  pos, valid = b["agent_position"], b["agent_valid"] > 0
  car = np.isin(b["agent_type"], [scenes.VEHICLE, scenes.BUS]) & (b["agent_mask"] > 0)
  for i in range(len(pos)):
    idx = np.flatnonzero(car[i])
    for x in range(len(idx)):
      for y in range(x + 1, len(idx)):
        both = valid[i, idx[x]] & valid[i, idx[y]]
        if both.any():
          gap = np.linalg.norm(pos[i, idx[x]][both] - pos[i, idx[y]][both], axis=-1).min()
          assert gap > 2.0, (i, idx[x], idx[y], gap)


def _pairwise(points):
  return np.linalg.norm(points[:, None] - points[None], axis=-1)


def test_se2_augmentation_is_a_rigid_motion_of_the_whole_scene():
  kwargs = dict(num_examples=20, augment_se2=True)
  src = create_dataset("synthetic_scenes", "train", **kwargs)
  idx, seeds = np.array([1, 2, 3]), np.array([7, 8, 9], np.uint64)
  plain, aug = src.get(idx), src.get(idx, seeds)
  again = create_dataset("synthetic_scenes", "train", **kwargs).get(idx, seeds)
  for key in av2.SCENE_FIELDS:
    np.testing.assert_array_equal(aug[key], again[key])
  for key in ("agent_valid", "agent_mask", "agent_predict", "agent_type", "map_mask",
              "map_type"):
    np.testing.assert_array_equal(aug[key], plain[key])
  for i in range(len(idx)):
    valid = plain["agent_valid"][i] > 0
    m = plain["map_mask"][i] > 0
    before = np.concatenate([plain["agent_position"][i][valid], plain["map_start"][i][m],
                             plain["map_end"][i][m]]).astype(np.float64)
    after = np.concatenate([aug["agent_position"][i][valid], aug["map_start"][i][m],
                            aug["map_end"][i][m]]).astype(np.float64)
    assert not np.allclose(before, after)
    np.testing.assert_allclose(_pairwise(after), _pairwise(before), atol=2e-3)
    # One rotation angle: heading offsets and the rotation of every displacement agree.
    dh = scenes.wrap_angle(aug["agent_heading"][i][valid] - plain["agent_heading"][i][valid])
    theta = dh[0]
    np.testing.assert_allclose(scenes.wrap_angle(dh - theta), 0.0, atol=1e-5)
    rot = scenes.rotation(theta)
    np.testing.assert_allclose((before - before[0]) @ rot.T, after - after[0], atol=2e-3)
    np.testing.assert_allclose(plain["agent_velocity"][i][valid] @ rot.T,
                               aug["agent_velocity"][i][valid], atol=1e-4)
    # Relative headings are unchanged; padding stays zero.
    h0, h1 = plain["agent_heading"][i][valid], aug["agent_heading"][i][valid]
    np.testing.assert_allclose(scenes.wrap_angle((h1[:, None] - h1) - (h0[:, None] - h0)),
                               0.0, atol=1e-5)
    assert not aug["agent_position"][i][~valid].any() and not aug["map_start"][i][~m].any()
  assert not np.allclose(aug["agent_heading"][0] - plain["agent_heading"][0],
                         aug["agent_heading"][1] - plain["agent_heading"][1])


def test_train_iterator_and_eval_batches():
  src = create_dataset("synthetic_scenes", "train", num_examples=12, augment_se2=True)
  it = TrainIterator(src, 4, seed=0, process_index=0, process_count=1, prefetch=0)
  resumed = TrainIterator(src, 4, seed=0, process_index=0, process_count=1, start_step=2,
                          prefetch=0)
  batches = [next(it) for _ in range(3)]
  assert batches[0]["agent_position"].shape == (4, A, T, 2)
  assert batches[0]["map_type"].dtype == np.int32
  np.testing.assert_array_equal(next(resumed)["agent_position"], batches[2]["agent_position"])
  # Augmented training batches are rigid motions of the plain scenes.
  plain = src.get(it.indices(0))
  np.testing.assert_array_equal(batches[0]["agent_valid"], plain["agent_valid"])
  assert not np.allclose(batches[0]["map_start"], plain["map_start"])
  threaded = TrainIterator(src, 4, seed=0, process_index=0, process_count=1, prefetch=2)
  np.testing.assert_array_equal(next(threaded)["map_end"], batches[0]["map_end"])
  threaded.close()

  test = create_dataset("synthetic_scenes", "test", num_examples=6)
  out = list(eval_batches(test, 4, process_index=0, process_count=1))
  assert [b["agent_position"].shape[0] for b in out] == [4, 4]
  np.testing.assert_array_equal(np.concatenate([b["mask"] for b in out]), [1] * 6 + [0] * 2)
  np.testing.assert_array_equal(out[1]["map_start"][:2], test.get(np.arange(4, 6))["map_start"])


def test_av2_scale_and_bad_options():
  b = create_dataset("synthetic_scenes", "train", history_steps=50, future_steps=60,
                     max_agents=4, max_segments=128).get(np.arange(2))
  assert b["agent_position"].shape == (2, 4, 110, 2) and b["map_start"].shape == (2, 128, 2)
  assert np.all(b["agent_valid"][:, 0] == 1)
  with pytest.raises(ValueError, match="max_agents"):
    create_dataset("synthetic_scenes", "train", max_agents=0)
  with pytest.raises(ValueError, match="speed_range"):
    create_dataset("synthetic_scenes", "train", speed_range=(9.0, 3.0))
  with pytest.raises(ValueError, match="position_noise"):
    create_dataset("synthetic_scenes", "train", position_noise=-1.0)
  with pytest.raises(TypeError, match="bad option"):
    create_dataset("synthetic_scenes", "train", num_lanes=3)
  with pytest.raises(IndexError, match="out of range"):
    create_dataset("synthetic_scenes", "test", num_examples=3).get(np.array([3]))
