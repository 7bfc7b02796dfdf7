"""The webhook rules of domain/webhooks.py: topics, the URL and address checks, the
retry schedule, the signature."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import random

import pytest

from ordergraph.domain.errors import DomainError
from ordergraph.domain.events import InventoryEventType, OrderEventType
from ordergraph.domain.webhooks import (
    TOPIC_EVENTS,
    RetryPolicy,
    WebhookTopic,
    check_topics,
    check_url,
    event_id,
    is_unsafe_address,
    new_secret,
    signature_header,
    topic_of,
    verify,
)


def test_every_order_event_type_has_a_topic_and_inventory_bookkeeping_has_none() -> None:
    for kind in OrderEventType:
        assert topic_of("order", kind.value) == WebhookTopic(f"ORDER_{kind.value}")
    internal = {InventoryEventType.ALLOCATED, InventoryEventType.RELEASED}
    internal.add(InventoryEventType.SHIPPED)
    for stock in InventoryEventType:
        found = topic_of("inventory", stock.value)
        assert (found is None) == (stock in internal), stock
    assert set(TOPIC_EVENTS) == set(WebhookTopic) - {WebhookTopic.BACKLOG_CHANGED}


def test_topics_are_sorted_without_repeats_and_never_empty() -> None:
    assert check_topics(["ORDER_SHIPPED", "ORDER_PLACED", "ORDER_SHIPPED"]) == [
        WebhookTopic.ORDER_PLACED,
        WebhookTopic.ORDER_SHIPPED,
    ]
    with pytest.raises(DomainError):
        check_topics([])


@pytest.mark.parametrize(
    ("url", "allow_http", "code"),
    [
        ("https://hooks.example.com/in", False, None),
        ("https://hooks.example.com:8443/in?x=1", False, None),
        ("http://hooks.example.com/in", True, None),
        ("http://hooks.example.com/in", False, "UNSAFE_TARGET"),
        ("hooks.example.com/in", False, "INVALID"),
        ("https:///in", False, "INVALID"),
        ("https://a:b@hooks.example.com/", False, "INVALID"),
        ("https://hooks.example.com/#frag", False, "INVALID"),
        ("https://hooks.example.com:99999/", False, "INVALID"),
        ("https://hooks.example.com/" + "a" * 2048, False, "INVALID"),
    ],
)
def test_urls(url: str, allow_http: bool, code: str | None) -> None:
    if code is None:
        assert check_url(url, allow_http=allow_http).url == url
        return
    with pytest.raises(DomainError) as refused:
        check_url(url, allow_http=allow_http)
    assert refused.value.problems[0].code.value == code


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "::1",
        "fe80::1",
        "fd00:ec2::254",
        "fc00::1",
        "::ffff:127.0.0.1",
        "::",
        "not an address",
    ],
)
def test_unsafe_addresses(address: str) -> None:
    assert is_unsafe_address(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses(address: str) -> None:
    assert not is_unsafe_address(address)


def test_backoff_doubles_up_to_the_cap_with_jitter_below_the_step() -> None:
    policy = RetryPolicy(base_seconds=5, cap_seconds=600, jitter=0.5)
    rng = random.Random(7)
    for attempt in range(1, 12):
        step = min(600, 5 * 2 ** (attempt - 1))
        for _ in range(50):
            delay = policy.delay(attempt, rng)
            assert step * 0.5 <= delay <= step
    assert RetryPolicy(jitter=0).delay(3) == 20
    assert RetryPolicy(jitter=0, cap_seconds=60).delay(1000) == 60


def test_the_retry_window_runs_from_the_first_failure() -> None:
    policy = RetryPolicy(window=dt.timedelta(hours=24))
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert not policy.gives_up(start, start + dt.timedelta(hours=23, minutes=59))
    assert policy.gives_up(start, start + dt.timedelta(hours=24))


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body_and_verifies() -> None:
    secret, old = new_secret(), new_secret()
    body = b'{"id":"x"}'
    header = signature_header([secret, old], 1_700_000_000, body)
    expected = hmac.new(secret.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header.split(",")[:2] == ["t=1700000000", f"v1={expected}"]
    assert header.count("v1=") == 2
    assert verify(header, secret, body, now=1_700_000_100)
    assert verify(header, old, body, now=1_700_000_100)
    assert not verify(header, new_secret(), body, now=1_700_000_100)
    assert not verify(header, secret, body + b" ", now=1_700_000_100)
    assert not verify(header, secret, body, now=1_700_001_000)  # too old


def test_event_ids_differ_by_store_seq_and_figures() -> None:
    ids = {
        event_id(1, 5, WebhookTopic.ORDER_PLACED),
        event_id(2, 5, WebhookTopic.ORDER_PLACED),
        event_id(1, 6, WebhookTopic.ORDER_PLACED),
        event_id(1, 5, WebhookTopic.BACKLOG_CHANGED),
    }
    assert len(ids) == 4
    assert event_id(1, 5, WebhookTopic.ORDER_PLACED) == event_id(1, 5, WebhookTopic.ORDER_SHIPPED)
