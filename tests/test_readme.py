"""The README's two set-up commands exist, and CI runs the test one verbatim."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _setup_commands():
  readme = (ROOT / "README.md").read_text()
  setup = readme.split("## Set up", 1)[1].split("\n## ", 1)[0]
  return re.findall(r"```bash\n(.+?)\n```", setup)


def test_readme_has_exactly_two_setup_commands():
  commands = _setup_commands()
  assert len(commands) == 2
  assert commands[0].endswith("jaxvision train")
  assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command_verbatim():
  ci = (ROOT / ".ci" / "run").read_text().splitlines()
  assert _setup_commands()[1] in ci
