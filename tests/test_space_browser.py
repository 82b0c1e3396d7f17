"""The Space in a real browser (headless Chromium driven by Playwright), as a visitor uses it: a photo is scored and
its heat map shown, the ablations and a batch run, every tab is screenshotted at a desktop and a phone width into
artifacts/space/ (for a person to look at), and a bad upload shows our error on the page.

Needs Debian's chromium (`apt-get install -y chromium`) and `pip install playwright`; skipped where either is absent.
"""

import re
from pathlib import Path

import pytest
from space_server import EXAMPLES, PROJECT

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.is_file():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)", allow_module_level=True)

pytestmark = pytest.mark.browser
ARTIFACTS = PROJECT / "artifacts" / "space"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]  # fmt: skip
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
TABS = ("Score", "Ablations", "Batch", "Explore", "About")
WAIT_MS = 60_000


@pytest.fixture(scope="module")
def page(space) -> sync_api.Page:
    """One browser page on the app for the whole module, at the desktop width."""
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=VIEWPORTS["desktop"])
        page.set_default_timeout(WAIT_MS)
        page.goto(space.url)
        yield page
        browser.close()


def open_tab(page: sync_api.Page, name: str) -> None:
    page.get_by_role("tablist").first.wait_for()
    tab = page.get_by_role("tab", name=name, exact=True)
    if not tab.is_visible():  # at a phone's width the last tabs move into the "More tabs" menu
        page.get_by_role("button", name="More tabs").click()
        tab = page.locator(".overflow-dropdown button", has_text=name)
    tab.click()


def test_banner_shows_the_demo_model(page):
    sync_api.expect(page.locator("#demo-banner")).to_contain_text("Demo model serving")


# Each test starts from a fresh page and does what it needs itself: they pass in any order (pytest-randomly).


def score_on_page(page: sync_api.Page, photo: Path) -> None:
    """A fresh page, `photo` uploaded on the Score tab, its score, heat map and neighbours shown."""
    page.reload()
    open_tab(page, "Score")
    page.locator("#photo input[type=file]").set_input_files(photo)
    sync_api.expect(page.locator("#summary")).to_contain_text(re.compile(r"Memorability \d+\.\d / 100"))
    sync_api.expect(page.locator("#heatmap img")).to_be_visible()


def ablate_on_page(page: sync_api.Page, photo: Path | None = None) -> None:
    """The Ablations tab run on `photo`, or on the photo already there (carried over from Score)."""
    open_tab(page, "Ablations")
    if photo is not None:
        page.locator("#ablation-photo input[type=file]").set_input_files(photo)
    sync_api.expect(page.locator("#ablation-photo img")).to_be_visible()
    page.get_by_role("button", name="Run the six ablations").click()
    sync_api.expect(page.locator("#ablated img")).to_have_count(6)


def batch_on_page(page: sync_api.Page) -> None:
    open_tab(page, "Batch")
    page.locator("#batch-files input[type=file]").set_input_files(sorted(EXAMPLES.glob("*.jpg")))
    page.get_by_role("button", name="Score all").click()
    sync_api.expect(page.locator("#batch-table")).to_contain_text("rocket.jpg")


def test_photo_gets_a_score_and_a_heat_map(page):
    score_on_page(page, EXAMPLES / "astronaut.jpg")
    sync_api.expect(page.locator("#similar img").first).to_be_visible()


def test_the_photo_carries_to_the_ablations_tab(page):
    """Uploaded on Score, the photo is in the Ablations tab when the visitor opens it."""
    score_on_page(page, EXAMPLES / "astronaut.jpg")
    ablate_on_page(page)
    sync_api.expect(page.locator("#faces")).to_contain_text("Faces found by MTCNN")
    sync_api.expect(page.locator("#faces")).to_contain_text(": 1; removed: 1.")  # the astronaut's face


def test_ablations_show_six_pictures(page):
    page.reload()
    ablate_on_page(page, EXAMPLES / "coffee.jpg")


def test_batch_scores_every_file(page):
    page.reload()
    batch_on_page(page)


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_every_tab_screenshotted(page, viewport):
    """With every tab filled (a photo scored and ablated, a batch); a person checks these pictures (nothing cut off,
    readable)."""
    score_on_page(page, EXAMPLES / "astronaut.jpg")
    ablate_on_page(page)
    batch_on_page(page)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size(VIEWPORTS[viewport])
    page.wait_for_timeout(500)  # the tab bar decides which tabs fit
    for tab in TABS:
        open_tab(page, tab)
        page.wait_for_timeout(500)  # the tab's plots and galleries lay themselves out
        path = ARTIFACTS / f"{tab.lower()}_{viewport}.png"
        page.screenshot(path=path, full_page=True, animations="disabled")
        assert path.stat().st_size > 10_000
    page.set_viewport_size(VIEWPORTS["desktop"])


def test_bad_upload_shows_our_error(page, tmp_path):
    not_a_photo = tmp_path / "notes.jpg"
    not_a_photo.write_text("These are my holiday notes, not a picture.\n")
    page.reload()  # an empty photo input again
    page.locator("#photo input[type=file]").set_input_files(not_a_photo)
    sync_api.expect(page.get_by_text("notes.jpg: not an image format we can read").first).to_be_visible()
    page.wait_for_timeout(1000)  # the message slides in
    page.screenshot(path=ARTIFACTS / "error_desktop.png", animations="disabled")
