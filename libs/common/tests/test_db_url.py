"""Which MongoDB URLs the services talk to directly (common.db.one_server)."""

from hypothesis import given
from hypothesis import strategies as st

from common.db import one_server

HOST = st.from_regex(r"[a-z][a-z0-9.-]{0,20}(:[0-9]{2,5})?", fullmatch=True)


@given(HOST, st.sampled_from(["", "/", "/pv", "/pv?tls=true", "?appName=x"]))
def test_one_host_without_a_replica_set_is_talked_to_directly(host: str, tail: str) -> None:
    assert one_server(f"mongodb://{host}{tail}")
    assert one_server(f"mongodb://user:p%40ss@{host}{tail}")


@given(st.lists(HOST, min_size=2, max_size=4))
def test_replica_sets_keep_discovery(hosts: list[str]) -> None:
    assert not one_server(f"mongodb://{','.join(hosts)}/pv")
    assert not one_server(f"mongodb://{hosts[0]}/pv?replicaSet=rs0")
    assert not one_server(f"mongodb+srv://{hosts[0]}/pv")
    assert not one_server(f"mongodb://{hosts[0]}/?directConnection=false")
