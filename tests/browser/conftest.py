"""The console in a real browser: Debian's Chromium, headless, driven by Playwright,
against the app served over HTTP on 127.0.0.1 (tests/conftest.py's `live_server`).

Playwright never downloads a browser here: it is told where Chromium is (`CHROMIUM`, by
default /usr/bin/chromium, which `make test` installs with apt when it is missing). These
tests run on PostgreSQL. Each page's screenshot is kept in tests/artifacts/screenshots/
for a person to look at; a script error or a refused resource on a page fails its test.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from adapters.bootstrap import Services
from engine import people
from engine.actors import system_actor
from tests.conftest import _TABLES, PASSWORD, LiveServer

CHROMIUM = os.environ.get("OMS_TEST_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
VIEWPORT = {"width": 1366, "height": 768}  # a laptop screen
# A page answering a refused request (400, 401, 403, 409, 422, 429) is what some tests
# ask for; a missing file (404) or a server error is not.
REFUSAL = re.compile(r"Failed to load resource: the server responded with a status of "
                     r"4(?!04)\d\d")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


@pytest.fixture
def database_url(postgres_database: str) -> str:
    """Browser tests run on PostgreSQL only: an emptied database for each."""
    engine = create_engine(postgres_database)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {', '.join(_TABLES)} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return postgres_database


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless; the run fails (never skips) when it is missing."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: `make test` installs it "
                    "(apt-get install chromium)", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    """A fresh browser tab on the live server; script errors and refused resources
    (a content security policy violation, say) are collected and fail the test."""
    context = browser.new_context(viewport=VIEWPORT, base_url=live_server.url)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    tab.on("console", lambda message: problems.append(f"console {message.type}: {message.text}")
           if message.type == "error" and not REFUSAL.match(message.text) else None)
    yield tab
    context.close()
    assert problems == [], "the page reported errors:\n" + "\n".join(problems)


@pytest.fixture
def person(services: Services) -> Callable[..., str]:
    """Create a person with these roles; return their username (password: PASSWORD)."""

    def create(*roles: str, username: str | None = None) -> str:
        name = username or f"{'-'.join(roles)}-{uuid.uuid4().hex[:6]}"
        with services.uow() as uow:
            people.create_user(uow, system_actor("test"), name, roles, password=PASSWORD)
            uow.commit()
        return name

    return create


@pytest.fixture
def signed_in(page: Any, person: Callable[..., str]) -> Callable[..., str]:
    """Sign a new person with these roles in through the sign-in form, in `page`."""

    def sign_in(*roles: str, username: str | None = None) -> str:
        name = person(*roles, username=username)
        page.goto("/console/sign-in")
        page.get_by_label("Username").fill(name)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/console/")
        return name

    return sign_in


def screenshot(page: Any, name: str) -> Path:
    """Save what the page shows now, whole, as tests/artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
