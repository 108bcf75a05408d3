from devices.geodesy import great_circle_m as distance_m
from edge.truck.policy import ReportingPolicy, Sample, heading_change, should_report

P = ReportingPolicy(interval_s=10, min_interval_s=1, distance_m=200, heading_deg=30)


def s(t, lat=23.0, lon=113.0, course=90.0, speed=60.0, fix=True):
    return Sample(t, lat if fix else None, lon if fix else None, course, speed, fix)


def test_distance_and_heading_helpers():
    assert abs(distance_m(23.0, 113.0, 23.001, 113.0) - 111.2) < 0.5
    assert heading_change(350, 10) == 20 and heading_change(10, 350) == 20


def test_first_fix_interval_distance_turn_and_fix_changes():
    assert should_report(P, None, s(0))
    assert not should_report(P, s(0), s(5))
    assert should_report(P, s(0), s(10))
    assert should_report(P, s(0), s(2, lat=23.002))  # 222 m
    assert not should_report(P, s(0), s(2, lat=23.001))
    assert should_report(P, s(0), s(2, course=130))
    assert not should_report(P, s(0), s(2, course=130, speed=2))  # turning at walking pace: noise
    assert not should_report(P, s(0), s(0.5, lat=23.01))  # under min interval
    assert should_report(P, s(0), s(0.5, fix=False))  # fix lost: at once
    assert should_report(P, s(0, fix=False), s(0.2))  # fix recovered: at once
    assert not should_report(P, s(0, fix=False), s(3, fix=False))
