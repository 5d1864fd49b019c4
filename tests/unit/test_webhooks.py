"""Webhook rules that need no database: which URLs and event types a subscription takes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine import webhooks
from engine.actors import system_actor
from engine.errors import InputValidationError
from engine.webhooks import WEBHOOK_EVENT_TYPES


class RefusingUnitOfWork:
    """A unit of work that fails the test if anything reaches the record."""

    @property
    def session(self):
        raise AssertionError("a refused subscription must not touch the record")


@pytest.mark.parametrize("url", [
    "https://hooks.example.com/oms", "http://127.0.0.1:8080/in?tenant=7",
    "https://[::1]:8443/", "HTTPS://Example.COM", "http://localhost",
])
def test_http_and_https_urls_with_a_host_are_accepted(url):
    assert webhooks.url_problem(url) is None


@pytest.mark.parametrize("url", [
    "ftp://example.com/", "example.com/hooks", "https://", "https://user:pw@example.com/",
    "https://exa mple.com/", "https://example.com/\n", "https://example.com:0/",
    "https://example.com:65536/", "https://example.com/caf\u00e9", "https://-bad-.com/",
    "https://example.com/" + "a" * 500,
])
def test_other_urls_are_refused(url):
    assert webhooks.url_problem(url) is not None


def test_every_published_event_type_is_a_webhook_event_type():
    assert set(webhooks.EVENT_TYPES.values()) == set(WEBHOOK_EVENT_TYPES)
    assert len(set(WEBHOOK_EVENT_TYPES)) == len(WEBHOOK_EVENT_TYPES)
    assert webhooks.EVENT_TYPES["order.received"] == "order.created"
    assert webhooks.EVENT_TYPES["order.partially_shipped"] == "order.shipped"


def test_a_bad_subscription_is_refused_with_paths_before_the_record_is_touched():
    with pytest.raises(InputValidationError) as refused:
        webhooks.subscribe(RefusingUnitOfWork(), system_actor("test"), "ftp://example.com",
                           ["order.created", "order.exploded"])
    assert [(p.field, p.message) for p in refused.value.problems] == [
        ("url", webhooks.URL_MESSAGE), ("event_types/1", webhooks.EVENT_TYPE_MESSAGE)]


def test_the_backoff_gives_each_delivery_six_attempts_over_about_seven_hours():
    assert webhooks.MAX_ATTEMPTS == 6
    total = sum(step.total_seconds() for step in webhooks.BACKOFF)
    assert 7 * 3600 < total < 8 * 3600


def test_only_a_2xx_answer_is_a_success():
    assert webhooks.AttemptResult(status_code=204).succeeded
    assert not webhooks.AttemptResult(status_code=301).succeeded
    assert not webhooks.AttemptResult(status_code=500).succeeded
    assert not webhooks.AttemptResult(error="ConnectionRefusedError").succeeded


def test_the_readme_names_the_webhook_event_types_the_api_accepts():
    # given the README's section on webhooks
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Webhooks", 1)[1].split("\n## ", 1)[0]
    # then the event types it lists, written out in full, are exactly those accepted
    listed = re.findall(r"`(order\.[a-z_]+)`", section)
    assert listed == list(WEBHOOK_EVENT_TYPES)
