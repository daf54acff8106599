"""The playground in a real browser, driven the way a person uses it: type
`/checkpoint …`, switch between the demo users, click buttons, confirm
dialogs, read the thread. Behind the page runs the whole product (the
same builder as `checkpoint-bot demo`): the real bot over signed
requests, emulated Hyper-V hosts over WinRM. Screenshots of each step are
kept in var/test-artifacts/playground/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from bot.devtools.playground import Demo, DemoOptions, start_demo
from tests.browser_support import artifact, chromium_context

# Slack threads are paced at Slack's one post per second per channel.
WAIT_MS = 20_000


def state_is(state: str) -> re.Pattern[str]:
    """The root message's State field (an emoji, then the state)."""
    return re.compile(rf"State\s*\S+\s+{state}")


# The module's tests share one demo and one page, in file order (a later
# test opens the thread an earlier one made): one xdist worker runs a file
# (`--dist loadfile` in the Makefile).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    running = start_demo(DemoOptions(workdir=tmp_path_factory.mktemp("demo"), port=0, speed=60))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def page(demo: Demo) -> Iterator[Page]:
    with chromium_context() as context:
        opened = context.new_page()
        errors: list[str] = []
        opened.on("pageerror", lambda exc: errors.append(str(exc)))
        opened.goto(demo.url + "?user=U0ALICE")
        expect(opened.get_by_test_id("composer")).to_be_visible()
        yield opened
        assert not errors, f"JavaScript errors in the playground: {errors}"


def be(page: Page, user: str) -> None:
    page.get_by_test_id("user-switcher").select_option(user)
    expect(page.locator("body")).to_have_attribute("data-user", user)


def type_command(page: Page, text: str) -> None:
    page.get_by_test_id("channel-ops").click()
    page.get_by_test_id("composer").fill(text)
    page.get_by_test_id("composer").press("Enter")


def root_of(page: Page, vm: str) -> Locator:
    """The thread root of the change for `vm` in #ops."""
    return (
        page.get_by_test_id("channel-messages")
        .get_by_test_id("message")
        .filter(has=page.get_by_role("heading", name=re.compile(f"checkpoint of {vm}$")))
    )


def shot(page: Page, name: str) -> Path:
    path = artifact(name)
    page.screenshot(path=str(path))
    return path


def test_create_approve_roll_back_and_the_thread_tells_the_story(page: Page) -> None:
    be(page, "U0ALICE")
    type_command(page, '/checkpoint create WEB01 --reason "KB5044284 cumulative update"')
    root = root_of(page, "WEB01")
    expect(root).to_contain_text(state_is("awaiting approval"), timeout=WAIT_MS)
    answer = page.get_by_test_id("ephemeral").filter(has_text="WEB01").last
    expect(answer).to_contain_text("waits for approval", timeout=WAIT_MS)
    shot(page, "01-alice-requested.png")
    # The two-person rule: everyone sees the buttons, but alice's click on
    # her own change is refused (to her alone). Bob, an approver, may.
    root.get_by_role("button", name="Approve").click()
    refused = page.get_by_test_id("ephemeral").filter(has_text="cannot approve")
    expect(refused).to_contain_text("asked for this checkpoint", timeout=WAIT_MS)
    expect(root).to_contain_text(state_is("awaiting approval"))

    be(page, "U0BOB")
    expect(page.get_by_test_id("ephemeral").filter(has_text="WEB01")).to_have_count(0)
    root.get_by_role("button", name="Approve").click()
    expect(root).to_contain_text(state_is("active"), timeout=WAIT_MS)
    expect(root.get_by_role("button", name="Roll back")).to_be_visible()
    root.get_by_test_id("open-thread").click()
    thread = page.get_by_test_id("thread-pane")
    expect(thread).to_contain_text("production checkpoint", timeout=WAIT_MS)
    expect(thread).to_contain_text("@bob")
    shot(page, "02-bob-approved-thread.png")

    be(page, "U0ALICE")
    root.get_by_role("button", name="Roll back").click()
    dialog = page.get_by_test_id("confirm-dialog")
    expect(dialog).to_contain_text("Roll back WEB01?")
    expect(dialog).to_contain_text("since the checkpoint was taken is lost")
    shot(page, "03-rollback-confirm.png")
    dialog.get_by_test_id("confirm-ok").click()
    expect(dialog).to_have_count(0)
    # A prod rollback needs a second person too (deploy/examples/demo-policy.yaml).
    expect(root).to_contain_text("Waiting for approval to roll back", timeout=WAIT_MS)

    be(page, "U0BOB")
    root.get_by_role("button", name="Approve").click()
    dialog = page.get_by_test_id("confirm-dialog")
    expect(dialog).to_contain_text("Approve the rollback of WEB01?")
    dialog.get_by_test_id("confirm-ok").click()
    expect(root).to_contain_text(state_is("rolled back"), timeout=WAIT_MS)
    root.get_by_test_id("open-thread").click()
    # The root turns "rolled back" as soon as the change does; its reply is
    # posted a moment later (paced), so wait for the reply itself.
    messages = thread.get_by_test_id("thread-messages").last
    expect(messages).to_contain_text("rolled back as @alice asked", timeout=WAIT_MS)
    shot(page, "04-rolled-back-thread.png")

    # The thread is the record: one reply per step that matters, in order,
    # with who did it; the approvers are pinged by their group's mention.
    replies = messages.get_by_test_id("message")
    story = " | ".join(replies.all_inner_texts())
    steps = [
        "Approval needed to create WEB01",
        "approval given by @bob",
        "created as @alice asked",
        "Approval needed to roll back WEB01",
        "approval given by @bob",
        "rolled back as @alice asked",
    ]
    at = 0
    for step in steps:
        found = story.find(step, at)
        assert found >= 0, f"{step!r} missing after position {at} in the thread: {story}"
        at = found + len(step)
    assert replies.count() <= 8, story

    # Mentions render as Slack shows them: names, highlighted; the group's
    # handle, highlighted for bob, its member. No raw id is left in sight.
    group = messages.locator(".mention[data-group='S0APPROVERS']").first
    expect(group).to_have_text("@hyperv-approvers")
    expect(group).to_have_class(re.compile(r"\bmention-me\b"))
    expect(messages.locator(".mention[data-user='U0BOB']").first).to_have_text("@bob")
    seen = page.get_by_test_id("channel-messages").inner_text() + story
    assert not re.search(r"\b[USC]0[A-Z0-9]{2,}\b", seen), seen
    shot(page, "04b-mentions.png")


def test_the_requester_withdraws_a_waiting_request(page: Page) -> None:
    be(page, "U0ALICE")
    type_command(page, '/checkpoint create WEB02 --reason "not needed after all"')
    root = root_of(page, "WEB02")
    expect(root).to_contain_text(state_is("awaiting approval"), timeout=WAIT_MS)
    # Bob sees the same button, but only alice, who asked, may withdraw.
    be(page, "U0BOB")
    root.get_by_role("button", name="Withdraw").click()
    page.get_by_test_id("confirm-dialog").get_by_test_id("confirm-ok").click()
    refused = page.get_by_test_id("ephemeral").filter(has_text="withdraw")
    expect(refused).to_contain_text("who asked for it", timeout=WAIT_MS)
    expect(root).to_contain_text(state_is("awaiting approval"))
    be(page, "U0ALICE")
    root.get_by_role("button", name="Withdraw").click()
    dialog = page.get_by_test_id("confirm-dialog")
    expect(dialog).to_contain_text("Withdraw your checkpoint request?")
    dialog.get_by_test_id("confirm-ok").click()
    expect(root).to_contain_text(state_is("withdrawn"), timeout=WAIT_MS)
    expect(root).to_contain_text("Last: withdrawn by @alice")
    # Nothing waits any more: no Approve, Reject or Withdraw is offered.
    expect(root.get_by_role("button", name=re.compile("Approve|Reject|Withdraw"))).to_have_count(0)
    shot(page, "05b-withdrawn.png")


def test_a_domain_controller_is_refused_with_its_reason(page: Page) -> None:
    be(page, "U0ALICE")
    type_command(page, '/checkpoint create CORP-DC01 --reason "monthly patching"')
    refusal = page.get_by_test_id("ephemeral").filter(has_text="CORP-DC01").last
    expect(refusal).to_contain_text("domain_controller", timeout=WAIT_MS)
    expect(refusal).to_contain_text("USN rollback")
    expect(refusal).to_contain_text("Only visible to you")
    shot(page, "05-corp-dc01-refused.png")
    # A refusal goes to the requester alone: no thread, nothing for bob.
    expect(root_of(page, "CORP-DC01")).to_have_count(0)
    be(page, "U0BOB")
    expect(page.get_by_test_id("ephemeral").filter(has_text="CORP-DC01")).to_have_count(0)


def test_the_app_home_opens_the_request_form(page: Page) -> None:
    be(page, "U0CAROL")
    page.get_by_test_id("app-link").click()
    home = page.get_by_test_id("home-view")
    expect(home).to_contain_text("Awaiting your approval", timeout=WAIT_MS)
    home.get_by_role("button", name="Request a checkpoint").click()
    modal = page.get_by_test_id("modal")
    expect(modal).to_contain_text("Request a checkpoint", timeout=WAIT_MS)
    modal.get_by_label("VM", exact=True).select_option("STG-WEB01")
    # The bot validates the submission; its errors appear under the field.
    modal.get_by_test_id("modal-submit").click()
    expect(modal.get_by_test_id("modal-error").filter(has_text="Say why")).to_be_visible()
    modal.get_by_label("Reason", exact=True).fill("try the request form")
    shot(page, "06-request-form.png")
    modal.get_by_test_id("modal-submit").click()
    expect(modal).to_have_count(0)
    # Opened from the Home tab, the result comes in the app's DM ...
    page.get_by_test_id("tab-messages").click()
    expect(page.get_by_test_id("channel-messages")).to_contain_text("STG-WEB01", timeout=WAIT_MS)
    # ... and staging needs no approval: the thread in #ops shows it taken.
    page.get_by_test_id("channel-ops").click()
    expect(root_of(page, "STG-WEB01")).to_contain_text(state_is("active"), timeout=WAIT_MS)


def test_a_click_during_a_live_update_is_not_lost(page: Page) -> None:
    """Pressed on a button, the page gets an update (someone else's command);
    released, the click still opens the thread: the redraw waits for it.
    Last in the file: carol's help answer stays in her view."""
    be(page, "U0ALICE")
    type_command(page, '/checkpoint create STG-APP01 --reason "a click mid-update"')
    root = root_of(page, "STG-APP01")
    expect(root).to_contain_text(state_is("active"), timeout=WAIT_MS)
    replies = root.get_by_test_id("open-thread")
    expect(replies).to_be_visible(timeout=WAIT_MS)
    # Hovered the way a click is aimed (visible, stable, hit by the pointer,
    # waiting out a redraw of the thread's own replies), then pressed there.
    replies.hover(timeout=WAIT_MS)
    page.mouse.down()
    version = page.locator("body").get_attribute("data-version")
    page.evaluate(
        """user => fetch("/ui/command", {method: "POST",
            headers: {"Content-Type": "application/json"},
            body: JSON.stringify({user, channel: "C0OPS", text: "/checkpoint help"})})""",
        "U0CAROL",
    )
    expect(page.locator("body")).not_to_have_attribute("data-version", version or "")
    page.mouse.up()
    thread = page.get_by_test_id("thread-pane")
    expect(thread).to_be_visible(timeout=WAIT_MS)
    expect(thread).to_contain_text("STG-APP01")
    page.get_by_test_id("thread-close").click()
