"""Which job tokens an upkeep pass checks for revocation: all of them while they are
few, else at most RESYNC_MAX_JOBS a pass, each in turn."""

from notifier.upkeep import longest_unchecked


def test_job_tokens_are_checked_in_turn_at_most_limit_a_pass() -> None:
    checked: dict[str, None] = {}
    assert sorted(longest_unchecked(checked, {"a", "b"}, 3)) == ["a", "b"]
    assert sorted(longest_unchecked(checked, {"a", "b"}, 3)) == ["a", "b"]  # few: all, always

    order = longest_unchecked(checked, {"a", "b", "c"}, 2)
    assert order[0] == "c"  # never checked comes first
    passes = [order, longest_unchecked(checked, {"a", "b", "c"}, 2)]
    assert {job for due in passes for job in due} == {"a", "b", "c"}  # none left out

    assert longest_unchecked(checked, {"c"}, 2) == ["c"]  # unwatched ones are forgotten
    assert list(checked) == ["c"]
