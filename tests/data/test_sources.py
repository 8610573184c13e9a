"""Shared data helpers: the HDF5 signature check behind the .mat readers."""

from jaxvision.data.sources import HDF5_SIGNATURE, is_hdf5_file


def test_is_hdf5_file_finds_the_signature_at_a_userblock_offset(tmp_path):
  plain = tmp_path / "plain.h5"
  plain.write_bytes(HDF5_SIGNATURE + b"\0" * 100)
  matlab = tmp_path / "v73.mat"          # MATLAB v7.3: a 512-byte text header, then HDF5
  matlab.write_bytes(b"MATLAB 7.3 MAT-file".ljust(512, b" ") + HDF5_SIGNATURE + b"\0" * 64)
  v5 = tmp_path / "v5.mat"
  v5.write_bytes(b"MATLAB 5.0 MAT-file".ljust(128, b" ") + b"\0" * 1024)
  assert is_hdf5_file(str(plain)) and is_hdf5_file(str(matlab))
  assert not is_hdf5_file(str(v5))
