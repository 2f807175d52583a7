"""docs/reliability.md names the tests that stage each fault: every one of them must exist."""

from __future__ import annotations

import re

from support import REPO

DOC = REPO / "docs/reliability.md"


def test_every_test_the_reliability_doc_names_exists() -> None:
    named = re.findall(r"`(tests/[\w/]+\.py)::(test_\w+)`", DOC.read_text())
    assert len(named) > 40, f"only {len(named)} tests named in {DOC.name}"
    missing = [
        f"{path}::{name}"
        for path, name in named
        if not re.search(rf"^def {name}\(", (REPO / path).read_text(), re.MULTILINE)
    ]
    assert missing == [], f"docs/reliability.md names tests that do not exist: {missing}"
