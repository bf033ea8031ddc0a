"""Run ids, window names and Params that become paths stay inside their root (issue 19)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowguard.safepaths import UnsafePath, component, confined


@pytest.mark.parametrize("name", ["..", ".", "", "..."])
def test_names_pointing_at_a_parent_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(UnsafePath, match="another run id"):
        confined(tmp_path, name)


@pytest.mark.parametrize(("name", "folder"), [
    ("manual__2017-07-04T00:00:00+00:00", "manual__2017-07-04T00_00_00_00_00"),
    ("../../etc", ".._.._etc"),
    ("a/b", "a_b"),
    ("scheduled__2017-07-04", "scheduled__2017-07-04"),
])
def test_other_names_become_one_folder_inside_the_root(tmp_path: Path, name: str,
                                                       folder: str) -> None:
    path = confined(tmp_path, name)
    assert path == tmp_path.resolve() / folder and path.parent == tmp_path.resolve()


def test_symlinked_run_folder_leading_out_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "work"
    root.mkdir()
    (root / "escape").symlink_to(tmp_path)
    with pytest.raises(UnsafePath, match="leads outside"):
        confined(root, "escape")


def test_ingest_with_run_id_dotdot_touches_nothing(home: Path) -> None:
    """The ingest task with run id `..` used to stage into $FLOWGUARD_HOME/work and delete it
    (another run's training set included)."""
    from flowguard.config import get_settings
    from flowguard.pipeline import validate_interval

    other = get_settings().work_dir / "train" / "other-run" / "training_set.parquet"
    other.parent.mkdir(parents=True)
    other.write_bytes(b"another run's training set")
    with pytest.raises(UnsafePath):
        validate_interval("2017-07-04T00:00:00+00:00", "2017-07-05T00:00:00+00:00", "..")
    assert other.read_bytes() == b"another run's training set"
    assert component("manual__x+y:z") == "manual__x_y_z"
