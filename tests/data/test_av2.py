"""The Argoverse 2 motion-forecasting reader on tiny scenarios written in the AV2 layout."""

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jaxvision.data import av2, create_dataset, list_datasets

VEHICLE, PEDESTRIAN, CYCLIST = (av2.AV2_OBJECT_TYPES.index(t)
                                for t in ("vehicle", "pedestrian", "cyclist"))


def _track(track_id, object_type, category, steps, x, y, heading=0.0, vx=0.0, vy=0.0):
  steps = np.asarray(steps)
  full = lambda v: np.broadcast_to(np.asarray(v, np.float64), steps.shape).copy()
  return dict(track_id=track_id, object_type=object_type, object_category=category,
              timestep=steps, position_x=full(x), position_y=full(y), heading=full(heading),
              velocity_x=full(vx), velocity_y=full(vy))


def _focal_x(t):
  return 100.0 + 0.5 * t


def _tracks(num_steps=110):
  t = np.arange(num_steps)
  keep = lambda steps: steps[steps < num_steps]
  return [
      # Unscored, 20 m from the focal agent at step 49, listed first in the file.
      _track("AV", "vehicle", 1, t, _focal_x(49) + 20.0, 200.0, heading=0.1),
      _track("N1", "vehicle", 1, keep(np.arange(20, 81)), _focal_x(49), 205.0, vx=1.0),
      _track("X", "vehicle", 0, keep(np.arange(60, 110)), _focal_x(49), 201.0),  # future only
      _track("S", "pedestrian", 2, t, _focal_x(49), 230.0, heading=-1.0, vy=1.5),
      _track("N2", "cyclist", 0, keep(np.arange(45, 61)), _focal_x(49) - 10.0, 200.0),
      _track("F", "vehicle", 3, t, _focal_x(t), 200.0, heading=0.25, vx=5.0, vy=0.5),
  ]


def _points(xs, ys):
  return [{"x": float(x), "y": float(y), "z": 1.0} for x, y in zip(xs, ys)]


def _map():
  lane = lambda lane_type, left, right: {
      "id": 0, "lane_type": lane_type, "is_intersection": False, "left_lane_boundary": left,
      "right_lane_boundary": right, "left_lane_mark_type": "NONE",
      "right_lane_mark_type": "NONE", "predecessors": [], "successors": [],
      "left_neighbor_id": None, "right_neighbor_id": None}
  return {
      "lane_segments": {
          # 40 m along y = 200 (boundaries with 3 and 2 waypoints): 8 pieces of 5 m.
          "7": lane("VEHICLE", _points([90, 100, 130], [201.75] * 3),
                    _points([90, 130], [198.25] * 2)),
          # 12 m diagonal, 4 vs 2 waypoints, centreline from (140, 180) to (140 + 7.2, 189.6).
          "12": lane("BUS", _points(np.linspace(139, 146.2, 4), np.linspace(181, 190.6, 4)),
                     _points([141, 148.2], [179, 188.6])),
      },
      "drivable_areas": {"1": {"id": 1, "area_boundary": _points([0, 1, 1], [0, 0, 1])}},
      # Anti-parallel edges: the centreline still runs x = 111.5 from y = 190 to y = 210.
      "pedestrian_crossings": {"3": {"id": 3, "edge1": _points([110, 110], [190, 210]),
                                     "edge2": _points([113, 113], [210, 190])}},
  }


def _write(root, split, sid, tracks=None, amap=None, num_steps=110, focal="F", edit=None):
  folder = os.path.join(root, split, sid)
  os.makedirs(folder, exist_ok=True)
  tracks = _tracks(num_steps) if tracks is None else tracks
  cols = {k: [] for k in ("observed", "track_id", "object_type", "object_category", "timestep",
                          "position_x", "position_y", "heading", "velocity_x", "velocity_y")}
  for tr in tracks:
    n = len(tr["timestep"])
    cols["observed"] += list(tr["timestep"] < 50)
    for k in ("track_id", "object_type", "object_category"):
      cols[k] += [tr[k]] * n
    for k in ("timestep", "position_x", "position_y", "heading", "velocity_x", "velocity_y"):
      cols[k] += list(tr[k])
  rows = len(cols["track_id"])
  cols.update(scenario_id=[sid] * rows, start_timestamp=[10**9] * rows,
              end_timestamp=[10**9 + 10**8 * (num_steps - 1)] * rows,
              num_timestamps=[num_steps] * rows, focal_track_id=[focal] * rows,
              city=["PIT"] * rows)
  if edit:
    edit(cols)
  pq.write_table(pa.table(cols), os.path.join(folder, f"scenario_{sid}.parquet"))
  with open(os.path.join(folder, f"log_map_archive_{sid}.json"), "w") as f:
    json.dump(_map() if amap is None else amap, f)


@pytest.fixture
def root(tmp_path):
  _write(str(tmp_path), "train", "b-scene")
  _write(str(tmp_path), "train", "a-scene")
  _write(str(tmp_path), "val", "v-scene")
  _write(str(tmp_path), "test", "t-scene", num_steps=50)
  return str(tmp_path)


def test_converts_agents_focal_first_then_scored_then_by_distance(root):
  assert "av2_motion" in list_datasets()
  src = create_dataset("av2_motion", "train", data_dir=root, max_agents=6, max_segments=20)
  assert src.scenario_ids == ["a-scene", "b-scene"] and len(src) == 2
  assert src.info.num_classes == 0 and src.info.image_shape == () and src.info.num_examples == 2
  b = src.get(np.array([1, 0]))
  for name, (dtype, _) in av2.SCENE_FIELDS.items():
    assert b[name].dtype == dtype, name
  assert b["agent_position"].shape == (2, 6, 110, 2) and b["map_start"].shape == (2, 20, 2)
  # F (focal), S (scored, 30 m), then N1 (5 m), N2 (10 m at its last history step), AV (20 m);
  # X is never observed in the history and is dropped.
  t = np.arange(110)
  np.testing.assert_allclose(b["agent_position"][0, 0], np.stack([_focal_x(t), 200 + 0 * t], -1))
  np.testing.assert_allclose(b["agent_velocity"][0, 0], np.tile([5.0, 0.5], (110, 1)))
  np.testing.assert_allclose(b["agent_heading"][0, 0], 0.25)
  order_y = b["agent_position"][0, :5, 49, 1]
  np.testing.assert_allclose(order_y, [200.0, 230.0, 205.0, 200.0, 200.0])
  np.testing.assert_array_equal(b["agent_type"][0], [VEHICLE, PEDESTRIAN, VEHICLE, CYCLIST,
                                                     VEHICLE, 0])
  np.testing.assert_array_equal(b["agent_mask"][0], [1, 1, 1, 1, 1, 0])
  np.testing.assert_array_equal(b["agent_predict"][0], [1, 1, 0, 0, 0, 0])
  np.testing.assert_allclose(b["agent_heading"][0, 1, :3], -1.0)
  # Valid steps and zero padding: N1 is observed on steps 20..80, N2 on 45..60.
  np.testing.assert_array_equal(np.flatnonzero(b["agent_valid"][0, 2]), np.arange(20, 81))
  np.testing.assert_array_equal(np.flatnonzero(b["agent_valid"][0, 3]), np.arange(45, 61))
  assert not b["agent_position"][0, 2, :20].any() and not b["agent_position"][0, 5].any()
  np.testing.assert_allclose(b["agent_velocity"][0, 2, 20:81], np.tile([1.0, 0.0], (61, 1)))
  # Scenarios are independent of batch position.
  np.testing.assert_array_equal(b["agent_position"][0], src.get(np.array([1]))[
      "agent_position"][0])


def test_map_centerlines_are_boundary_means_cut_into_5m_pieces(root):
  b = create_dataset("av2_motion", "train", data_dir=root, max_segments=40).get(np.array([0]))
  m = b["map_mask"][0] > 0
  assert m.sum() == 8 + 3 + 4 and not m[15:].any()
  start, end, kind = b["map_start"][0][m], b["map_end"][0][m], b["map_type"][0][m]
  length = np.linalg.norm(end - start, axis=-1)
  assert length.max() <= 5.0 + 1e-4
  lane = kind == av2.AV2_MAP_TYPES.index("VEHICLE")
  got = sorted(zip(start[lane, 0].round(4), start[lane, 1].round(4)))
  np.testing.assert_allclose(got, [(90 + 5 * k, 200.0) for k in range(8)], atol=1e-4)
  np.testing.assert_allclose(length[lane], 5.0, atol=1e-4)
  bus = kind == av2.AV2_MAP_TYPES.index("BUS")
  np.testing.assert_allclose(sorted(start[bus].tolist()),
                             [[140 + 2.4 * k, 180 + 3.2 * k] for k in range(3)], atol=1e-4)
  walk = kind == av2.AV2_MAP_TYPES.index("PEDESTRIAN")
  np.testing.assert_allclose(sorted(start[walk].tolist()),
                             [[111.5, 190 + 5 * k] for k in range(4)], atol=1e-4)
  # Nearest first from the focal agent at the current step (124.5, 200).
  d = av2.point_segment_distance(np.array([[_focal_x(49), 200.0]]), start, end)[0]
  assert np.all(np.diff(d) >= -1e-6) and d[0] == 0.0
  # max_segments keeps the nearest ones.
  few = create_dataset("av2_motion", "train", data_dir=root, max_segments=3).get(np.array([0]))
  np.testing.assert_allclose(few["map_start"][0], start[:3])


def test_lane_centerline_resamples_both_boundaries():
  left = np.array([[0.0, 1.0], [10.0, 1.0], [10.0, 11.0]])  # an L: 20 m
  right = np.array([[0.0, -1.0], [20.0, -1.0]])  # 20 m straight
  line = av2.lane_centerline(left, right)
  assert line.shape == (10, 2)
  u = np.linspace(0, 20, 10)
  left_r = np.where(u[:, None] <= 10, np.stack([u, 1 + 0 * u], -1),
                    np.stack([10 + 0 * u, u - 9], -1))
  right_r = np.stack([u, -1 + 0 * u], -1)
  np.testing.assert_allclose(line, (left_r + right_r) / 2, atol=1e-12)
  starts, ends = av2.polyline_to_segments(np.array([[0.0, 0.0], [12.0, 0.0]]))
  np.testing.assert_allclose(starts, [[0, 0], [4, 0], [8, 0]])
  np.testing.assert_allclose(ends, [[4, 0], [8, 0], [12, 0]])


def test_shorter_windows_and_splits(root):
  # H = 10, F = 5: frames are AV2 steps 40..54, the current step 49 is index 9.
  b = create_dataset("av2_motion", "train", data_dir=root, history_steps=10, future_steps=5,
                     max_agents=4).get(np.array([0]))
  np.testing.assert_allclose(b["agent_position"][0, 0, :, 0], _focal_x(np.arange(40, 55)))
  np.testing.assert_array_equal(b["agent_valid"][0, 3], np.arange(40, 55) >= 45)  # N2
  # "test" reads AV2's val/ (AV2's test split has no futures); av2_split picks a directory.
  assert create_dataset("av2_motion", "test", data_dir=root).scenario_ids == ["v-scene"]
  src = create_dataset("av2_motion", "test", data_dir=root, av2_split="test")
  t = src.get(np.array([0]))
  assert t["agent_valid"][0, 0, :50].all() and not t["agent_valid"][0, :, 50:].any()
  assert not t["agent_position"][0, :, 50:].any()


def test_missing_data_gives_the_expected_layout(root, tmp_path):
  with pytest.raises(ValueError, match="data_dir.*scenario_<scenario_id>.parquet"):
    create_dataset("av2_motion", "train")
  with pytest.raises(FileNotFoundError, match="does not exist.*log_map_archive"):
    create_dataset("av2_motion", "train", data_dir=str(tmp_path / "nowhere"))
  os.makedirs(tmp_path / "only_train" / "train")
  with pytest.raises(FileNotFoundError, match="val.*does not exist.*found \\['train'\\]"):
    create_dataset("av2_motion", "test", data_dir=str(tmp_path / "only_train"))
  with pytest.raises(FileNotFoundError, match="holds no scenario directories"):
    create_dataset("av2_motion", "train", data_dir=str(tmp_path / "only_train"))
  with pytest.raises(ValueError, match="history_steps"):
    create_dataset("av2_motion", "train", data_dir=root, history_steps=51)
  src = create_dataset("av2_motion", "train", data_dir=root)
  os.remove(os.path.join(root, "train", "b-scene", "log_map_archive_b-scene.json"))
  src.get(np.array([0]))  # files are read lazily: scenario a is intact
  with pytest.raises(FileNotFoundError, match="log_map_archive_b-scene.json is missing"):
    src.get(np.array([1]))
  os.remove(os.path.join(root, "train", "a-scene", "scenario_a-scene.parquet"))
  with pytest.raises(FileNotFoundError, match="scenario_a-scene.parquet is missing"):
    src.get(np.array([0]))


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.pop("heading"), "missing column.*'heading'"),
    (lambda c: c.update(position_x=[str(v) for v in c["position_x"]]),
     "column 'position_x' must be floating point; found type string"),
    (lambda c: c.update(timestep=[float(v) for v in c["timestep"]]),
     "column 'timestep' must be integer"),
    (lambda c: c.update(object_type=["spaceship"] * len(c["object_type"])),
     "'object_type' has unknown value.*spaceship"),
    (lambda c: c.update(focal_track_id=["nobody"] * len(c["track_id"])),
     "focal_track_id 'nobody'"),
    (lambda c: c.update(velocity_y=[None] + list(c["velocity_y"][1:])),
     "column 'velocity_y' has 1 null"),
])
def test_malformed_scenario_columns_name_the_file_and_column(tmp_path, edit, message):
  _write(str(tmp_path), "train", "bad", edit=edit)
  src = create_dataset("av2_motion", "train", data_dir=str(tmp_path))
  with pytest.raises(ValueError, match=message) as e:
    src.get(np.array([0]))
  assert "scenario_bad.parquet" in str(e.value)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.pop("lane_segments"), "needs a 'lane_segments' object"),
    (lambda m: m["lane_segments"]["7"].pop("right_lane_boundary"),
     "lane_segments\\['7'\\] has no 'right_lane_boundary'"),
    (lambda m: m["lane_segments"]["12"]["left_lane_boundary"][1].pop("y"),
     "lane_segments\\['12'\\]\\['left_lane_boundary'\\] must be a list of"),
    (lambda m: m["lane_segments"]["7"].update(lane_type="HOVERCRAFT"),
     "'lane_type'\\] must be one of"),
    (lambda m: m["pedestrian_crossings"]["3"].pop("edge2"), "needs 'edge1' and 'edge2'"),
])
def test_malformed_maps_name_the_file_and_key(tmp_path, edit, message):
  amap = _map()
  edit(amap)
  _write(str(tmp_path), "train", "bad", amap=amap)
  with pytest.raises(ValueError, match=message) as e:
    create_dataset("av2_motion", "train", data_dir=str(tmp_path)).get(np.array([0]))
  assert "log_map_archive_bad.json" in str(e.value)
