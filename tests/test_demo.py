"""`sabot demo` on a machine with no credentials: the transcript and the exit code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_demo_plays_the_whole_flow_and_masks_the_token(tmp_path: Path) -> None:
    # A stray .env with broken settings in the working folder must be ignored.
    (tmp_path / ".env").write_text("DATABASE_URL=mysql://nowhere\nSABOT_APPROVERS=not-an-id\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ATLASSIAN_"))}
    done = subprocess.run(
        [sys.executable, "-m", "bot", "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for step in (
        "types `/service-account request`",
        "clicks [Approve]",
        "1 of 2 approvals (@bob)",  # the example policy: two approvals for a write scope
        "Approved by @bob, @carol",
        "clicks [Reveal token]",
        "receives, ephemerally",
        "Token revealed at",
    ):
        assert step in out
    assert "masked here" in out
    assert "ATATT" in out and not any(len(word) > 100 for word in out.split())
