"""The KPI formulas on plain values: percentile ranks, shares, APQC's product, age buckets,
the days and hours of a period."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from engine.insights.formulas import (
    DEFINITIONS,
    age_bucket,
    day_keys,
    hour_keys,
    nearest_rank,
    perfect_order_product,
    share,
)


def test_the_nearest_rank_is_the_ceiling_of_p_times_n():
    for count in range(1, 500):
        for percent in (50, 90, 95, 99):
            assert nearest_rank(percent, count) == math.ceil(percent * count / 100)
    # two times: p50 is the shorter, p90 the longer
    assert (nearest_rank(50, 2), nearest_rank(90, 2)) == (1, 2)
    assert (nearest_rank(50, 10), nearest_rank(90, 10)) == (5, 9)


def test_a_share_of_nothing_is_unknown_not_zero():
    assert share(5, 7) == 5 / 7
    assert share(0, 4) == 0.0
    assert share(3, 0) is None and share(None, None) is None


def test_apqc_perfect_order_is_the_product_of_its_four_shares():
    # APQC's own example: .98 x .97 x .99 x .82 = 77.16 % (truncated)
    assert math.floor(perfect_order_product(0.98, 0.97, 0.99, 0.82) * 10000) / 100 == 77.16
    assert perfect_order_product(0.9, None, 1.0, 1.0) is None


def test_ages_fall_in_one_bucket_each():
    assert [age_bucket(days) for days in (0, 0.99, 1, 2.5, 3, 6.9, 7, 40, -0.1)] == [
        "under_1d", "under_1d", "1_to_3d", "1_to_3d", "3_to_7d", "3_to_7d", "over_7d",
        "over_7d", "under_1d"]


def test_a_period_lists_every_day_and_hour_in_utc():
    start = datetime(2026, 11, 1, tzinfo=UTC)
    end = datetime(2026, 11, 4, tzinfo=UTC)
    assert day_keys(start, end) == ["2026-11-01", "2026-11-02", "2026-11-03"]
    hours = hour_keys(start, datetime(2026, 11, 1, 3, tzinfo=UTC))
    assert hours == ["2026-11-01T00", "2026-11-01T01", "2026-11-01T02"]


def test_every_kpi_has_a_name_a_unit_and_a_written_definition():
    keys = [definition.key for definition in DEFINITIONS]
    assert len(keys) == len(set(keys)) == 10
    assert all(d.name and d.unit and len(d.text) > 80 for d in DEFINITIONS)
