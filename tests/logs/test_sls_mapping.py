"""``liubai.collector.sls.mapping`` on its own: a GetLogs answer -> stored text -> LogRecords with
content-hash ids, and a field the answer mangles is rejected where it is, the rest still mapped."""

from __future__ import annotations

from typing import Any

import pytest

from liubai.collector.logfields import FieldMap, log_mapper
from liubai.collector.sls.mapping import queried_logs, queried_records


class _Log:
    def __init__(self, contents: Any, time: int) -> None:
        self._contents, self._time = contents, time

    def get_contents(self) -> Any:
        return self._contents

    def get_time(self) -> int:
        return self._time


class _Answer:
    def __init__(self, *logs: _Log) -> None:
        self._logs = logs

    def get_logs(self) -> tuple[_Log, ...]:
        return self._logs


def test_a_query_page_maps_to_records_with_locations_and_content_ids() -> None:
    page = queried_logs(
        _Answer(_Log({"message": "ok", "traceparent": "00-bad"}, 1_700_000_000), _Log({"message": "two"}, 0))
    )
    assert page[0] == ({"message": "ok", "traceparent": "00-bad"}, "2023-11-14T22:13:20.000000Z")
    mapped = list(queried_records(page, log_mapper(FieldMap()), "sls:p/l", "p/l query '*' #", 40))
    (first, first_rejects), (second, second_rejects) = mapped
    assert (first.message, second.message) == ("ok", "two")
    assert first.record_id != second.record_id and first.record_id  # content hashes
    assert [r.location for r in first_rejects] == ["p/l query '*' #40"], "the bad traceparent, at its place"
    assert second_rejects == []


def test_a_log_that_is_not_an_object_names_itself() -> None:
    with pytest.raises(ValueError, match="a log is not an object"):
        queried_logs(_Answer(_Log(["not", "a", "dict"], 0)))
