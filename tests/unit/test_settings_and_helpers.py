from __future__ import annotations

import pytest

from adapters.idempotency import fingerprint
from adapters.queue import resolve
from adapters.settings import DEFAULT_SQLITE_PATH, Settings
from engine.iso import country_codes, currency_codes, minor_units


def test_with_nothing_set_the_service_uses_an_embedded_sqlite_file_and_inline_jobs():
    settings = Settings.from_env({})
    assert settings.database_url == f"sqlite:///{DEFAULT_SQLITE_PATH}"
    assert settings.redis_url is None


def test_settings_come_from_oms_prefixed_variables():
    settings = Settings.from_env({
        "OMS_DATABASE_URL": "postgresql+psycopg://db/oms", "OMS_REDIS_URL": "redis://r:6379/1",
        "OMS_MAX_CONTENT_LENGTH": "2048", "DATABASE_URL": "ignored",
    })
    assert settings.database_url == "postgresql+psycopg://db/oms"
    assert settings.redis_url == "redis://r:6379/1"
    assert settings.max_content_length == 2048


def test_a_hold_waits_its_queues_sla_or_the_default():
    sla = Settings.from_env({"OMS_HOLD_SLA_HOURS": "default=12, vip-care=4,fraud=0.5"}).hold_sla
    assert (sla.hours("vip-care"), sla.hours("fraud"), sla.hours("manual")) == (4, 0.5, 12)
    assert Settings.from_env({}).hold_sla.hours("anything") == 24


@pytest.mark.parametrize("wrong", ["fraud", "fraud=", "fraud=soon", "fraud=0", "=4",
                                   "fraud=-2", "default=9000"])
def test_a_malformed_hold_sla_is_refused_with_the_part_that_is_wrong(wrong):
    with pytest.raises(ValueError, match="OMS_HOLD_SLA_HOURS"):
        Settings.from_env({"OMS_HOLD_SLA_HOURS": f"default=24,{wrong}"}).hold_sla  # noqa: B018


def test_the_same_request_has_the_same_fingerprint_and_any_change_alters_it():
    base = fingerprint("POST", "/orders?", b'{"a":1}')
    assert base == fingerprint("POST", "/orders?", b'{"a":1}')
    assert base != fingerprint("POST", "/orders?", b'{"a":2}')
    assert base != fingerprint("POST", "/customers?", b'{"a":1}')


def test_currencies_know_their_minor_units():
    assert minor_units("BRL") == 2
    assert minor_units("JPY") == 0
    assert minor_units("KWD") == 3
    assert {"BRL", "USD", "EUR"} <= currency_codes()
    assert "XXX" not in currency_codes()
    assert {"BR", "US", "DE"} <= country_codes()


def test_only_functions_of_the_jobs_package_can_be_run_as_jobs():
    assert resolve("jobs.maintenance.purge_idempotency_keys").__name__ == (
        "purge_idempotency_keys")
    with pytest.raises(ValueError):
        resolve("os.system")
