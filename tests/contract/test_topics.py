import pytest

from contract import topics


def test_builders_and_parse_round_trip():
    for kind, node, channel in [
        ("truck", "T-001", "position"),
        ("truck", "T_9", "lock"),
        ("gate", "G1", "passage"),
        ("gate", "G1", "command/result"),
        ("gate", "G1", "lane"),
        ("truck", "a" * 64, "availability"),
    ]:
        topic = topics.build(kind, node, channel)  # type: ignore[arg-type]
        info = topics.parse(topic)
        assert (info.kind, info.node_id, info.channel) == (kind, node, channel)
    assert topics.position("T1") == "bondwatch/v1/truck/T1/position"
    assert topics.command("gate", "G7") == "bondwatch/v1/gate/G7/command"
    assert topics.lane("G7") == "bondwatch/v1/gate/G7/lane"
    assert topics.command_result("truck", "T1") == "bondwatch/v1/truck/T1/command/result"


@pytest.mark.parametrize("node", ["", "a" * 65, "T/1", "T+1", "T#", "粤B12345", "T 1"])
def test_bad_node_ids_rejected(node):
    with pytest.raises(topics.TopicError, match="node id"):
        topics.position(node)


@pytest.mark.parametrize(
    "topic",
    [
        "bondwatch/v2/truck/T1/position",
        "bondwatch/v1/ship/T1/position",
        "bondwatch/v1/truck/T1/speed",
        "bondwatch/v1/truck/T1",
        "bondwatch/v1/truck/T+/position",
    ],
)
def test_foreign_topics_rejected(topic):
    with pytest.raises(topics.TopicError):
        topics.parse(topic)


def test_server_subscriptions_are_plain_filters():
    every = topics.server_subscriptions()
    assert "bondwatch/v1/truck/+/position" in every
    assert "bondwatch/v1/gate/+/lane" in every
    assert not any(f.startswith("$share/") for f in every)


def test_passages_split_from_the_rest_and_together_all():
    every = topics.server_subscriptions()
    only = topics.server_subscriptions(passages=True)
    rest = topics.server_subscriptions(passages=False)
    assert only == ["bondwatch/v1/gate/+/passage"]
    assert "bondwatch/v1/truck/+/position" in rest and only[0] not in rest
    assert sorted(only + rest) == sorted(every)
