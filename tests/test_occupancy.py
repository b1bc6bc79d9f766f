"""Specification: who is inside which watched zone, fix by fix (interlock.occupancy).

A tag's zones after every fix are exactly the watched zones whose area contains the fix, whatever the zones' shapes,
the path walked, and the zones watched and unwatched on the way. A tag that stays where no zone's answer can change
is placed without testing a zone.
"""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from interlock.geometry import Area, area_from_metres
from interlock.occupancy import TagPlace, ZoneOccupancy
from schemas.readings import TagFix

RECTANGLE = area_from_metres([[0, 0], [30, 0], [30, 10], [0, 10]], [0, 15])
L_SHAPE = area_from_metres([[20, 5], [40, 5], [40, 20], [30, 20], [30, 12], [20, 12]])
STAIR = area_from_metres([[24, -4], [27, -4], [27, 30], [24, 30]], [2, 6])
AREAS = {"PR-1": RECTANGLE, "L-2": L_SHAPE, "ST-3": STAIR}


def fix(tag: str, ts: int, x_m: float, y_m: float, z_m: float) -> TagFix:
    return TagFix(tag, ts, x_m * 1000.0, y_m * 1000.0, z_m * 1000.0, 0.9, True)


def expected_zones(occupancy: ZoneOccupancy, point: TagFix) -> set[str]:
    return {zone for zone, area in occupancy.areas.items() if area.contains(point.x, point.y, point.z)}


coordinate = st.floats(-30, 60, allow_nan=False).map(lambda v: round(v * 4) / 4)  # often exactly on an edge
stride = st.sampled_from([-3.0, -1.0, -0.25, 0.0, 0.25, 1.0, 3.0])
height = st.sampled_from([0.0, 1.2, 2.0, 6.0, 15.0, 16.0])
step = st.one_of(
    st.tuples(st.just("walk"), st.sampled_from(["T1", "T2"]), stride, stride, height),
    st.tuples(st.just("jump"), st.sampled_from(["T1", "T2"]), coordinate, coordinate, height),
    st.tuples(st.just("watch"), st.sampled_from(sorted(AREAS))),
    st.tuples(st.just("unwatch"), st.sampled_from(sorted(AREAS))),
)


@settings(max_examples=400, deadline=None)
@example([("walk", "T1", 0.0, 0.0, 1.2), ("walk", "T1", -2.0, 2.0, 1.2)], (31.0, 11.0))  # into the L's notch
@example([("walk", "T1", 0.0, 0.0, 1.2), ("walk", "T1", 11.0, 1.0, 1.2)], (10.0, 5.0))  # into the L from its left
@given(st.lists(step, min_size=1, max_size=80), st.sampled_from([(10.0, 5.0), (19.0, 6.0), (29.0, 11.0), (25.0, 15.0), (31.0, 11.0), (23.5, 3.0), (-1.0, 0.0)]))
def test_a_tag_is_in_exactly_the_watched_zones_containing_its_fix(steps, start):
    occupancy = ZoneOccupancy()
    for zone, area in AREAS.items():
        occupancy.watch(zone, area)
    places = {tag: TagPlace(tag) for tag in ("T1", "T2")}
    at = {tag: start for tag in places}
    for ts, action in enumerate(steps):
        if action[0] == "watch":
            occupancy.watch(action[1], AREAS[action[1]])
        elif action[0] == "unwatch":
            occupancy.unwatch(action[1])
        else:
            kind, tag, x, y, z = action
            if kind == "walk":
                x, y = at[tag][0] + x, at[tag][1] + y
            at[tag] = (x, y)
            occupancy.move(places[tag], fix(tag, ts, x, y, z))
        for tag, place in places.items():
            if place.fix is not None:
                assert set(place.zones) == expected_zones(occupancy, place.fix), (tag, place.fix)
                assert all(tag in occupancy.inside(zone) for zone in place.zones)


def test_a_tag_moving_inside_a_rectangle_zone_is_placed_without_a_zone_test(monkeypatch):
    occupancy = ZoneOccupancy()
    occupancy.watch("PR-1", RECTANGLE)
    place = TagPlace("T1")
    occupancy.move(place, fix("T1", 0, 10.0, 5.0, 1.2))
    tests = []
    monkeypatch.setattr(Area, "contains", lambda self, x, y, z: tests.append((x, y, z)) or True)
    for ts, (x, y) in enumerate([(10.2, 5.1), (11.0, 4.0), (2.0, 9.0)], start=1):
        assert occupancy.move(place, fix("T1", ts, x, y, 1.2)) == ()
    assert tests == [] and place.zones == ["PR-1"]


def test_watching_a_zone_places_the_tags_near_it_in_full_on_their_next_fix():
    occupancy = ZoneOccupancy()
    place = TagPlace("T1")
    occupancy.move(place, fix("T1", 0, 50.0, 5.0, 1.2))
    occupancy.watch("FAR-9", area_from_metres([[49, 4], [51, 4], [51, 6], [49, 6]]))
    occupancy.unwatch("FAR-9")
    assert occupancy.move(place, fix("T1", 1, 50.0, 5.0, 1.2)) == ()
    occupancy.watch("FAR-9", area_from_metres([[49, 4], [51, 4], [51, 6], [49, 6]]))
    assert place.zones == ["FAR-9"]
    assert occupancy.move(place, fix("T1", 2, 55.0, 5.0, 1.2)) == ["FAR-9"]
    assert place.zones == []
