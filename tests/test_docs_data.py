"""docs/data.md documents the layout tables of flowguard.schema: keep them in step."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowguard.schema import LABEL_FAMILIES, LAYOUTS, SHARED_COLUMNS

DOC = (Path(__file__).resolve().parents[1] / "docs" / "data.md").read_text()


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_every_layout_mapping_is_documented(name: str) -> None:
    assert f"`{name}`" in DOC
    rows = [line.rstrip(" |").split(" | ") for line in DOC.splitlines() if line.startswith("| `")]
    for published, canonical in LAYOUTS[name].columns:
        assert any(cells[0] == f"| `{canonical}`" and f"`{published}`" in cells[1:]
                   for cells in rows), f"{published} -> {canonical} not in docs/data.md"


def test_shared_columns_and_taxonomy_are_documented() -> None:
    for column in SHARED_COLUMNS:
        assert f"`{column}`" in DOC
    for label, family in LABEL_FAMILIES.items():
        assert f"| `{label}` | `{family}` |" in DOC
