import pytest

from server.alarms.lifecycle import ACTIONS, STATUSES, TransitionRefused, next_status

# Every (status, action) pair: the status it leads to, or None when refused.
TABLE = {
    ("active_unack", "ack"): "active_ack",
    ("active_unack", "clear"): "cleared_unack",
    ("active_unack", "assign"): "active_unack",
    ("active_unack", "comment"): "active_unack",
    ("active_ack", "ack"): None,
    ("active_ack", "clear"): "cleared_ack",
    ("active_ack", "assign"): "active_ack",
    ("active_ack", "comment"): "active_ack",
    ("cleared_unack", "ack"): "cleared_ack",
    ("cleared_unack", "clear"): None,
    ("cleared_unack", "assign"): "cleared_unack",
    ("cleared_unack", "comment"): "cleared_unack",
    ("cleared_ack", "ack"): None,
    ("cleared_ack", "clear"): None,
    ("cleared_ack", "assign"): None,
    ("cleared_ack", "comment"): "cleared_ack",
}


def test_table_covers_every_pair():
    assert set(TABLE) == {(s, a) for s in STATUSES for a in ACTIONS}


@pytest.mark.parametrize(("status", "action"), sorted(TABLE))
def test_transition(status, action):
    expected = TABLE[(status, action)]
    if expected is None:
        with pytest.raises(TransitionRefused) as info:
            next_status(status, action)
        assert info.value.status == status and info.value.action == action
        assert status in str(info.value)
    else:
        assert next_status(status, action) == expected


@pytest.mark.parametrize(("status", "action"), [("open", "ack"), ("active_unack", "delete")])
def test_unknown_status_or_action_refused(status, action):
    with pytest.raises(TransitionRefused, match="unknown"):
        next_status(status, action)


def test_both_documented_paths_reach_cleared_ack():
    s = next_status(next_status("active_unack", "ack"), "clear")
    assert s == "cleared_ack"
    s = next_status(next_status("active_unack", "clear"), "ack")
    assert s == "cleared_ack"
