"""The follower's status file, as `halo-exchange status` reads it: believed only from a live, recent writer."""

from __future__ import annotations

import json
import time

from node_hooks.follower.status_file import STALE_AFTER, read_status, write_status


def test_a_fresh_status_of_a_live_process_is_believed(tmp_path) -> None:
    """What the running node wrote a moment ago is its status; a missing file says the node may not run."""
    path = tmp_path / "node-status.json"
    assert read_status(path)[0] is None and "is `halo-exchange node` running" in read_status(path)[1]
    write_status(path, {"state": "following", "height": 12})
    record, problem = read_status(path)
    assert problem == "" and record["state"] == "following" and record["height"] == 12


def test_a_stale_or_orphaned_or_stopped_status_is_not_running(tmp_path) -> None:
    """A status not rewritten for a while, one whose writer is gone, or a stopped node's last word, all say
    the node is not running (and still show the last status)."""
    path = tmp_path / "node-status.json"
    write_status(path, {"state": "syncing"})
    assert "not running" in read_status(path, now=time.time() + STALE_AFTER + 1)[1]
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "pid": 2**22 + 12345}))  # above Linux's pid_max: no such process
    assert "not running" in read_status(path)[1]
    write_status(path, {"state": "stopped"})
    assert read_status(path)[1] == "the node stopped"
