"""Issue #21, the rules alone: which origins `handlers.workspace` refuses
(unknown fails closed), how it reads each kind of payload, and the config
keys that name the workspace (`slack.team_ids`, `slack.enterprise_id`)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from bot.config import ConfigError, SlackConfig
from handlers.workspace import Origin, Workspace, origin_of, refusal, workspace_from

OURS = "T0TEST"
FOREIGN = "T0FOREIGN"


# --- the pure rules ----------------------------------------------------------------------


def origin(**changes: Any) -> Origin:
    base: dict[str, Any] = {
        "kind": "block_actions",
        "team": OURS,
        "enterprise": None,
        "enterprise_install": False,
        "user": "U0BOB",
        "user_team": OURS,
        "ext_shared": False,
    }
    return Origin(**{**base, **changes})


ONE = Workspace(frozenset({OURS}))
GRID = Workspace(frozenset({OURS, "T0SISTER"}), "E0ORG")


@pytest.mark.parametrize(
    ("ws", "seen", "refused"),
    [
        (ONE, origin(), None),
        (ONE, origin(kind="command", user_team=None), None),
        (ONE, origin(team=FOREIGN, user_team=FOREIGN), "came from workspace T0FOREIGN"),
        (ONE, origin(team=None), "does not say which workspace"),
        (ONE, origin(user_team="T0EXT"), "external member"),
        (ONE, origin(enterprise="E0ORG"), "none is configured"),
        (ONE, origin(enterprise_install=True), "organisation-wide install"),
        (Workspace(frozenset()), origin(), "no workspace is configured"),
        (GRID, origin(enterprise="E0ORG", user_team="E0ORG"), None),  # Grid reports the org
        (GRID, origin(team="T0SISTER", enterprise="E0ORG", user_team="E0ORG"), None),
        (GRID, origin(enterprise=None), "does not say it came from organisation E0ORG"),
        (GRID, origin(enterprise="E0OTHER"), "not E0ORG"),
        (GRID, origin(enterprise="E0ORG", user_team="E0OTHER"), "external member"),
        (ONE, origin(kind="event", ext_shared=True, user_team=None), "shared channel"),
    ],
)
def test_who_is_refused(ws: Workspace, seen: Origin, refused: str | None) -> None:
    found = refusal(ws, seen)
    if refused is None:
        assert found is None
    else:
        assert found is not None and refused in found


def test_the_origin_is_read_from_each_kind_of_payload() -> None:
    command_form = {"command": "/checkpoint", "team_id": FOREIGN, "user_id": "U0BOB"}
    assert origin_of(command_form).team == FOREIGN
    assert origin_of(command_form).kind == "command"
    click = {
        "type": "block_actions",
        "team": {"id": OURS, "enterprise_id": "E0ORG"},
        "user": {"id": "U0BOB", "team_id": "T0EXT"},
        "is_enterprise_install": False,
    }
    seen = origin_of(click)
    assert (seen.team, seen.enterprise, seen.user_team) == (OURS, "E0ORG", "T0EXT")
    event = {
        "type": "event_callback",
        "team_id": OURS,
        "is_ext_shared_channel": True,
        "authorizations": [{"team_id": OURS, "is_enterprise_install": False}],
        "event": {"type": "app_home_opened", "user": "U0BOB", "user_team": "T0EXT"},
    }
    seen = origin_of(event)
    assert (seen.kind, seen.user_team, seen.ext_shared) == ("event app_home_opened", "T0EXT", True)


def test_the_config_names_the_workspace() -> None:
    assert SlackConfig(team_ids="T0ABC").team_ids == ("T0ABC",)  # type: ignore[arg-type]
    assert SlackConfig(team_ids=("T0A", "T0B"), enterprise_id="E0ORG").enterprise_id == "E0ORG"
    with pytest.raises(ValidationError, match="not a Slack team id"):
        SlackConfig(team_ids=("U0BOB",))
    with pytest.raises(ValidationError, match="not an Enterprise Grid id"):
        SlackConfig(team_ids=("T0A",), enterprise_id="T0A")
    with pytest.raises(ValidationError, match="only safe within one Enterprise Grid"):
        SlackConfig(team_ids=("T0A", "T0B"))


def test_a_configured_deployment_must_name_its_workspace() -> None:
    def never() -> dict[str, Any]:
        raise AssertionError("a configured workspace needs no auth.test")

    configured = SlackConfig(team_ids=("T0A",), enterprise_id=None)
    assert workspace_from(configured, demo=False, auth_test=never) == Workspace(frozenset({"T0A"}))
    with pytest.raises(ConfigError, match=r"slack\.team_ids is missing"):
        workspace_from(SlackConfig(), demo=False, auth_test=never)
    # Demo mode serves the bot token's own workspace.
    learned = workspace_from(SlackConfig(), demo=True, auth_test=lambda: {"team_id": "T0OWN"})
    assert learned == Workspace(frozenset({"T0OWN"}))
    assert workspace_from(SlackConfig(), demo=True, auth_test=dict).team_ids == frozenset()
