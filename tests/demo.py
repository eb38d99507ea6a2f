"""The demo's fix chain (examples/demo_vars.yml), which the project's default leaves empty:
tests of the demo data's fixes pass it to dbt explicitly."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEMO_VARS: dict = yaml.safe_load((ROOT / "examples/demo_vars.yml").read_text())
DEMO_FIXES: dict[str, list[str]] = {"fixes": DEMO_VARS["fixes"]}


def install_demo_fixes(project: Path) -> None:
    """Make a copy of the project (`project`) a user's project with the demo's three fixes
    as their own: models/demo/fixes/ moved into models/fixes/ (models and unit tests), and
    var `fixes` listing them."""
    demo, fixes = project / "models/demo/fixes", project / "models/fixes"
    for sql in sorted(demo.glob("*.sql")):
        sql.rename(fixes / sql.name)
    demo_yml = demo / "_demo_fixes__models.yml"
    (fixes / "_fixes__models.yml").write_text(demo_yml.read_text())
    demo_yml.unlink()
    project_file = project / "dbt_project.yml"
    chain = "".join(f"    - {name}\n" for name in DEMO_FIXES["fixes"])
    text = project_file.read_text()
    assert text.count("\n  fixes: []\n") == 1, "dbt_project.yml's var fixes is not `[]`"
    project_file.write_text(text.replace("\n  fixes: []\n", f"\n  fixes:\n{chain}"))
