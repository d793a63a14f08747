"""stats.json timing: passes of a wave overlap in time, so generation time counts each second once."""

from metamath_ray.pipeline.finalize import _timing


def test_overlapping_passes_count_once_and_the_first_result_is_the_earliest():
    passes = [
        {"pass": "rewrite", "requests": 4, "began_at_s": 10.0, "seconds": 30.0, "to_first_result_s": 20.0},
        {"pass": "solve round 0", "requests": 8, "began_at_s": 10.5, "seconds": 50.0, "to_first_result_s": 21.0},
        {"pass": "solve round 1", "requests": 8, "began_at_s": 70.0, "seconds": 5.0, "to_first_result_s": 1.0},
    ]
    timing = _timing(passes, wall_s=80.0)
    assert timing["generation_s"] == 55.5  # [10, 60.5] and [70, 75]
    assert timing["first_result_at_s"] == 30.0
    assert timing["other_s"] == 24.5


def test_entries_without_start_times_are_summed_as_before():
    timing = _timing([{"pass": "p", "requests": 1, "seconds": 3.0, "to_first_result_s": 1.0}] * 2, wall_s=10.0)
    assert timing["generation_s"] == 6.0 and timing["first_result_at_s"] is None
