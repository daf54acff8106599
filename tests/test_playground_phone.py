"""The playground on a phone and a tablet, in real Chromium (issue #17
items 5, 9, 10): at 390 x 844 nothing scrolls sideways, the message box is
whole and the sidebar is a drawer; at 820 wide an open thread takes the
whole width, so its words do not wrap letter by letter and Send covers
nothing. Emoji shortcodes and Slack date tokens render as Slack renders
them (dates in the browser's own zone), and the banner's clock ticks."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import FloatRect, Locator, Page, expect

from bot.devtools.playground import Demo, DemoOptions, start_demo
from tests.browser_support import artifact, chromium_context

WAIT_MS = 20_000
PHONE = {"width": 390, "height": 844}
TABLET = {"width": 820, "height": 1180}
BROWSER_ZONE = "America/New_York"
REPO = Path(__file__).resolve().parents[1]
EMOJI_JS = REPO / "bot" / "devtools" / "playground" / "static" / "emoji.js"
SHORTCODE = re.compile(r"(?<![\w:]):([a-z0-9_+-]+):(?![\w])")

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
    with chromium_context(PHONE["width"], PHONE["height"], timezone=BROWSER_ZONE) as context:
        opened = context.new_page()
        errors: list[str] = []
        opened.on("pageerror", lambda exc: errors.append(str(exc)))
        opened.goto(demo.url + "?user=U0ALICE")
        expect(opened.get_by_test_id("composer")).to_be_visible()
        yield opened
        assert not errors, f"JavaScript errors in the playground: {errors}"


def no_sideways_scroll(page: Page) -> None:
    widths = page.evaluate("[document.scrollingElement.scrollWidth, innerWidth]")
    assert widths[0] <= widths[1], f"the page is {widths[0]} px wide in a {widths[1]} px window"


def box_of(locator: Locator) -> FloatRect:
    """The element's box once it holds still: the playground redraws a
    pane (replaceChildren) whenever its state changes (a reply, a card
    update, the App Home), and an element measured while it is swapped out
    has no box. The locator finds the new one on the next try."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while (box := locator.bounding_box()) is None:
        assert time.monotonic() < deadline, f"{locator} was never rendered"
        time.sleep(0.05)
    return box


def fully_visible(page: Page, locator: Locator) -> None:
    box = box_of(locator)
    width, height = page.evaluate("[innerWidth, innerHeight]")
    assert box["x"] >= 0 and box["y"] >= 0, box
    assert box["x"] + box["width"] <= width and box["y"] + box["height"] <= height, box


def send(page: Page, text: str) -> None:
    page.get_by_test_id("composer").fill(text)
    page.get_by_test_id("composer").press("Enter")


def open_drawer_and_pick(page: Page, test_id: str) -> None:
    sidebar = page.get_by_test_id("sidebar")
    expect(sidebar).to_be_hidden()
    page.get_by_test_id("drawer-toggle").click()
    expect(sidebar).to_be_visible()
    expect(sidebar).to_be_in_viewport()
    # Slid all the way in (the drawer's transition ends at the window's edge).
    page.wait_for_function("document.getElementById('sidebar').getBoundingClientRect().left >= 0")
    page.screenshot(path=str(artifact(f"phone-390-drawer-{test_id}.png")))
    page.get_by_test_id(test_id).click()
    expect(sidebar).to_be_hidden()


def test_a_phone_sized_window(page: Page) -> None:
    page.set_viewport_size(PHONE)
    no_sideways_scroll(page)
    fully_visible(page, page.get_by_test_id("composer"))
    fully_visible(page, page.get_by_test_id("composer-send"))
    open_drawer_and_pick(page, "channel-ops")
    expect(page.get_by_role("heading", name="#ops")).to_be_visible()

    send(page, '/checkpoint create STG-WEB01 --reason "patching from a phone"')
    root = (
        page.get_by_test_id("channel-messages")
        .get_by_test_id("message")
        .filter(has=page.get_by_role("heading", name=re.compile("checkpoint of STG-WEB01$")))
    )
    expect(root).to_contain_text("active", timeout=WAIT_MS)
    no_sideways_scroll(page)
    fully_visible(page, page.get_by_test_id("composer"))
    page.screenshot(path=str(artifact("phone-390-channel.png")))

    # The thread replaces the channel, at the window's full width.
    root.get_by_test_id("open-thread").click()
    thread = page.get_by_test_id("thread-pane")
    expect(thread).to_contain_text("created as @alice asked", timeout=WAIT_MS)
    expect(page.get_by_test_id("channel-messages")).to_be_hidden()
    box = box_of(thread)
    assert box["width"] >= PHONE["width"] - 1
    no_sideways_scroll(page)
    # Scrolled to its newest reply, the thread keeps its Close button in view.
    fully_visible(page, page.get_by_test_id("thread-close"))
    page.screenshot(path=str(artifact("phone-390-thread.png")))
    page.get_by_test_id("thread-close").click()
    expect(page.get_by_test_id("channel-messages")).to_be_visible()

    # The drawer also leads to the App Home.
    open_drawer_and_pick(page, "app-link")
    expect(page.get_by_test_id("home-view")).to_be_visible(timeout=WAIT_MS)
    no_sideways_scroll(page)
    open_drawer_and_pick(page, "channel-ops")


def test_a_tablet_with_a_thread_open(page: Page) -> None:
    page.set_viewport_size(TABLET)
    send(page, '/checkpoint create STG-APP01 --reason "a tablet in portrait, thread open"')
    root = (
        page.get_by_test_id("channel-messages")
        .get_by_test_id("message")
        .filter(has=page.get_by_role("heading", name=re.compile("checkpoint of STG-APP01$")))
    )
    expect(root.get_by_test_id("open-thread")).to_be_visible(timeout=WAIT_MS)
    root.get_by_test_id("open-thread").click()
    thread = page.get_by_test_id("thread-pane")
    expect(thread).to_contain_text("created as @alice asked", timeout=WAIT_MS)
    # Its last reply (STG-APP01's guest VSS is broken: Hyper-V fell back to
    # a standard checkpoint): the thread is measured whole.
    expect(thread).to_contain_text("fell back to a standard checkpoint", timeout=WAIT_MS)
    no_sideways_scroll(page)
    # Full width: a reply's text column is wide, so words wrap as words.
    body = box_of(thread.locator(".msg-body").first)
    assert body["width"] > 600, body
    # The channel's Send button is not drawn over the thread.
    send_button = page.get_by_test_id("composer-send")
    if send_button.is_visible():
        sent, pane = send_button.bounding_box(), thread.bounding_box()
        assert sent is not None and pane is not None
        apart_x = sent["x"] >= pane["x"] + pane["width"] or pane["x"] >= sent["x"] + sent["width"]
        apart_y = sent["y"] >= pane["y"] + pane["height"] or pane["y"] >= sent["y"] + sent["height"]
        assert apart_x or apart_y, (sent, pane)
    page.screenshot(path=str(artifact("tablet-820-thread.png")))
    page.get_by_test_id("thread-close").click()


def test_a_small_laptop_shows_channel_and_thread_side_by_side(page: Page) -> None:
    page.set_viewport_size({"width": 1024, "height": 768})
    expect(page.get_by_test_id("sidebar")).to_be_visible()  # no drawer at this width
    root = (
        page.get_by_test_id("channel-messages")
        .get_by_test_id("message")
        .filter(has=page.get_by_role("heading", name=re.compile("checkpoint of STG-APP01$")))
    )
    expect(root.get_by_test_id("open-thread")).to_be_visible(timeout=WAIT_MS)
    root.get_by_test_id("open-thread").click()
    thread = page.get_by_test_id("thread-pane")
    expect(thread).to_contain_text("created as @alice asked", timeout=WAIT_MS)
    no_sideways_scroll(page)
    channel = box_of(page.get_by_test_id("channel-messages").locator(".msg-body").first)
    pane = box_of(thread)
    sent = box_of(page.get_by_test_id("composer-send"))
    assert channel["width"] > 280, channel  # words, not letters, per line
    assert sent["x"] + sent["width"] <= pane["x"], (sent, pane)  # Send stays left of the thread
    page.screenshot(path=str(artifact("laptop-1024-thread.png")))
    page.get_by_test_id("thread-close").click()


def test_emoji_shortcodes_render_as_slack_renders_them(page: Page) -> None:
    page.set_viewport_size(PHONE)
    send(page, "done :broom: :checkered_flag: :not_an_emoji:")
    said = page.get_by_test_id("channel-messages").get_by_test_id("message").last
    expect(said).to_contain_text("done 🧹 🏁 :not_an_emoji:", timeout=WAIT_MS)


def test_every_shortcode_the_bot_uses_has_its_emoji() -> None:
    table = set(re.findall(r'"?([a-z0-9_+-]+)"?: "', EMOJI_JS.read_text(encoding="utf-8")))
    sources = [*REPO.glob("templates/slack/*.j2"), *REPO.glob("handlers/**/*.py")]
    sources += [*REPO.glob("bot/notify/*.py")]
    used = {m for path in sources for m in SHORTCODE.findall(path.read_text(encoding="utf-8"))}
    assert {"broom", "checkered_flag", "ghost", "zzz"} <= used
    assert used - table == set()


def test_date_tokens_show_in_the_browsers_own_zone(page: Page) -> None:
    page.set_viewport_size(PHONE)
    send(page, "/checkpoint status CHG-0001")
    status = page.get_by_test_id("ephemeral").filter(has_text="History").last
    expect(status).to_contain_text("requested", timeout=WAIT_MS)
    first = status.locator("time[title]").first  # a date token, not the post time
    fallback = first.get_attribute("title") or ""
    at = datetime.strptime(fallback, "%Y-%m-%d %H:%M UTC").replace(tzinfo=UTC)
    local = at.astimezone(ZoneInfo(BROWSER_ZONE))
    expect(first).to_contain_text(f"{local.hour % 12 or 12}:{local:%M} {local:%p}")
    assert "UTC" not in first.inner_text()


def test_the_banner_clock_ticks_every_second(page: Page) -> None:
    clock = page.get_by_test_id("demo-clock")
    expect(clock).to_contain_text("bot clock \u00d760")  # the multiplication sign
    before = clock.inner_text()
    page.wait_for_timeout(1500)
    assert clock.inner_text() != before
