"""People's sessions in the console: who may open what, and when a session ends."""

from __future__ import annotations

from click.testing import CliRunner

from api.cli import main
from engine import people
from engine.actors import system_actor
from tests.conftest import PASSWORD, Console


def test_a_page_sends_a_stranger_to_sign_in_and_an_api_key_opens_no_page(client, admin):
    answer = client.get("/console/admin")
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/console/sign-in?next=/console/admin"
    assert client.get("/console/admin", headers=admin).status_code == 302


def test_a_session_does_not_call_the_api(console):
    ops = console("ops")
    assert ops.get("/orders").status_code == 401


def test_a_page_refuses_a_role_it_does_not_admit_and_says_why(console):
    answer = console("ops", "analyst").get("/console/admin")
    assert answer.status_code == 403
    assert "this page is for admin; you are analyst, ops" in answer.get_data(as_text=True)


def test_pages_carry_a_content_security_policy_that_admits_only_our_own_files(console):
    answer = console("admin").get("/console/admin")
    policy = answer.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "default-src 'self'" in policy
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert "<script>" not in answer.get_data(as_text=True).replace(
        '<script src="/console/static/', "")  # no inline script anywhere


def test_disabling_a_person_ends_their_open_session(app, services, console):
    ops = console("ops", "admin", username="olga")
    assert ops.get("/console/admin").status_code == 200
    with services.uow() as uow:
        people.disable_user(uow, system_actor("test"), "olga")
        uow.commit()
    assert ops.get("/console/admin").status_code == 302
    refused = Console.__new__(Console)
    refused.client = app.test_client()
    signin = refused.client.get("/console/sign-in").get_data(as_text=True)
    token = signin.split('name="csrf_token" value="')[1].split('"')[0]
    answer = refused.client.post("/console/sign-in", data={
        "username": "olga", "password": PASSWORD, "csrf_token": token})
    assert answer.status_code == 401  # a disabled account is refused like a wrong password


def test_a_session_idle_longer_than_the_setting_ends(make_app, services):
    app = make_app(SESSION_IDLE_MINUTES=1)
    with app.extensions["oms"].uow() as uow:
        people.create_user(uow, system_actor("test"), "ida", ["admin"], password=PASSWORD)
        uow.commit()
    ida = Console(app, "ida", PASSWORD)
    with ida.client.session_transaction() as session:
        session["seen"] -= 61
    assert ida.get("/console/admin").status_code == 302


def test_the_cli_creates_lists_and_disables_people(database_url, app):
    runner = CliRunner()
    environment = {"OMS_DATABASE_URL": database_url}
    created = runner.invoke(main, ["users", "create", "carla", "--role", "analyst", "--role",
                                   "ops", "--name", "Carla Dias"], env=environment)
    assert created.exit_code == 0, created.output
    assert "created 'carla' (analyst, ops)" in created.output
    password = created.output.split("password (shown once): ")[1].strip()
    Console(app, "carla", password)  # the printed password signs in
    listed = runner.invoke(main, ["users", "list"], env=environment)
    assert "carla" in listed.output and "analyst,ops" in listed.output
    assert "active" in listed.output
    disabled = runner.invoke(main, ["users", "disable", "carla"], env=environment)
    assert disabled.exit_code == 0
    assert "disabled" in runner.invoke(main, ["users", "list"], env=environment).output
    twice = runner.invoke(main, ["users", "create", "carla", "--role", "ops"], env=environment)
    assert twice.exit_code != 0 and "already exists" in twice.output


def test_a_new_person_needs_a_known_role_and_a_fitting_name(console):
    admin = console("admin")
    answer = admin.post("/console/admin", {"username": "Bad Name!", "roles": ["boss"]})
    assert answer.status_code == 422
    text = answer.get_data(as_text=True)
    assert "1-64 characters of a-z" in text and "one or more of analyst, ops, admin" in text
