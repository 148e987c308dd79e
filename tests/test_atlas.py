"""`deepvis atlas`: the static site, opened from the file system in a real headless Chromium
(the system's chromium and chromedriver, driven by Selenium): every link of the index
resolves, images load, "not computed yet" where assets are missing, arrow keys move.

Assets: lite0 block2_add and block4_dw_relu, units 0-3 optimized (48 px, 8 steps), crops of
6 photos; block3_project_bn has nothing, so it has no pages: the index lists it as not computed
and the layer links skip it.
"""

from __future__ import annotations

import html
import shutil
from pathlib import Path

import pytest

from conftest import EXAMPLES
from toolbox.assets import UnitImageFolder

MODEL = "efficientnet_lite0"
LAYERS = [("block2_add", 24), ("block3_project_bn", 40), ("block4_dw_relu", 240)]


@pytest.fixture(scope="module")
def assets(tmp_path_factory, cache_dir) -> Path:
    from toolbox.cli import main

    photos = tmp_path_factory.mktemp("atlas-photos")
    for p in sorted(EXAMPLES.glob("*.*")):
        if p.suffix != ".md":
            shutil.copy(p, photos / p.name)
    settings = tmp_path_factory.mktemp("atlas-settings") / "settings.yaml"
    settings.write_text(f"cache_dir: {cache_dir}\n")
    out = tmp_path_factory.mktemp("atlas-assets")
    assert main(["precompute", "--model", MODEL, "--layers", "block2_add,block4_dw_relu", "--units", "0-3",
                 "--unit-images", "--crops", str(photos), "--size", "48", "--steps", "8", "--batch", "4",
                 "-o", str(out), "--settings", str(settings)]) == 0
    return out


def said_of(assets: Path) -> dict[str, dict[int, str]]:
    """{layer: {unit: why}}: the units precompute found nothing to show (no image)."""
    return {layer: UnitImageFolder(assets).nothing_to_show(MODEL, layer) for layer in ("block2_add", "block4_dw_relu")}


def shown_unit(assets: Path, layer: str = "block2_add") -> int:
    """The first of units 0-3 of ``layer`` with an image (which ones show something is the
    engine's judgement, not what these tests are about)."""
    return next(u for u in range(4) if u not in said_of(assets)[layer])


@pytest.fixture(scope="module")
def site(assets, tmp_path_factory) -> Path:
    from toolbox.atlas import write_atlas

    out = tmp_path_factory.mktemp("site")
    report = write_atlas(MODEL, LAYERS, assets, out, fields={"block2_add": (19, 4), "block3_project_bn": (35, 8),
                                                              "block4_dw_relu": (67, 8)}, relu=["block4_dw_relu"])
    said = sum(len(units) for units in said_of(assets).values())
    assert report.layers == 2 and report.units == 24 + 240  # pages for what is computed (issue 21)
    assert report.unit_images == 8 - said and report.units_with_crops == 24 + 240
    return out


def test_a_unit_with_nothing_to_show_says_why_on_its_page_and_in_the_grid(assets, site):
    """precompute recorded lite0 block4_dw_relu's units with nothing to show (said, no image):
    their pages and grid cells say so, in the words deepvis units uses, instead of an image."""
    said = said_of(assets)["block4_dw_relu"]
    assert said, "block4_dw_relu 0-3 has a unit that cannot beat a plain image (issue 30)"
    for unit, why in said.items():
        page = (site / "block4_dw_relu" / f"{unit}.html").read_text()
        assert f'src="img/{unit}.png"' not in page and "nothing to show" in page and html.escape(why) in page
        assert not (site / "block4_dw_relu" / "img" / f"{unit}.png").exists()
    grid = (site / "block4_dw_relu" / "index.html").read_text()
    assert f"{len(said)} unit{'s' * (len(said) != 1)} with nothing to show" in grid
    assert html.escape(next(iter(said.values()))) in grid
    made = shown_unit(assets, "block4_dw_relu")
    assert "(before ReLU)" in (site / "block4_dw_relu" / f"{made}.html").read_text()  # which value, said
    add = (site / "block2_add" / f"{shown_unit(assets)}.html").read_text()
    assert "on its image</th><td>mean " in add and "ReLU" not in add.replace("ReLU6", "")  # an add layer has none


def test_pages_have_stable_urls_and_say_what_is_missing(site, assets):
    assert (site / "index.html").is_file() and (site / "style.css").is_file() and (site / "keys.js").is_file()
    for layer, channels in LAYERS:
        if layer != "block3_project_bn":
            assert (site / layer / "index.html").is_file()
            assert all((site / layer / f"{u}.html").is_file() for u in range(channels))
    assert not (site / "block3_project_bn").exists()  # nothing computed: no pages, listed on the index
    index = (site / "index.html").read_text()
    assert "<td>block3_project_bn</td>" in index and 'href="block2_add/index.html"' in index
    assert "the other 1 are listed here, not computed yet" in index
    u = shown_unit(assets)
    unit = (site / "block2_add" / f"{u}.html").read_text()
    assert f'src="img/{u}.png"' in unit and f'src="crops/{u}_top.png"' in unit and f'src="crops/{u}_bottom.png"' in unit
    assert "on its image</th><td>mean " in unit and f'data-right="{u + 1}.html"' in unit
    assert "top values</th><td>max " in unit and "bottom values</th><td>min " in unit  # the lowest are minima
    assert f'data-down="../block4_dw_relu/{u}.html"' in unit  # past the layer with nothing computed
    assert "not computed yet" in (site / "block2_add" / "5.html").read_text()  # no optimized image
    relu = (site / "block4_dw_relu" / "239.html").read_text()
    assert "bottom images" not in relu  # ReLU6: no lowest side
    assert 'data-right=' not in relu and 'data-up="../block2_add/23.html"' in relu  # last unit: no next
    assert "receptive field</th><td>67 px, stride 8" in relu and "crops show" not in relu
    assert "http" not in unit.replace("http-equiv", "")  # nothing fetched from anywhere


def test_a_field_wider_than_the_image_is_shown_beside_the_crops_window(assets, tmp_path):
    """Issue 21: the page said "receptive field 224 px" (the crops' window, clamped to the
    image) where the network's field is wider."""
    from toolbox.atlas import write_atlas

    write_atlas(MODEL, LAYERS[:1], assets, tmp_path, fields={"block2_add": (275, 16)})  # as if it were deeper
    page = (tmp_path / "block2_add" / "0.html").read_text()
    assert "receptive field</th><td>275 px, stride 16" in page
    assert "crops show</th><td>19 px (the field is wider than the image" in page


def test_without_crops_only_units_with_an_image_have_pages(assets, tmp_path):
    from toolbox.atlas import write_atlas

    images_only = tmp_path / "assets"
    shutil.copytree(assets, images_only, ignore=shutil.ignore_patterns("crops", "precompute"))
    report = write_atlas(MODEL, LAYERS, images_only, tmp_path / "site")
    assert report.layers == 2 and report.units == 8 and report.units_with_crops == 0
    layer = tmp_path / "site" / "block2_add"
    assert sorted(p.name for p in layer.glob("*.html")) == ["0.html", "1.html", "2.html", "3.html", "index.html"]
    assert 'data-right=' not in (layer / "3.html").read_text()  # the last unit with a page
    assert '<span><div class="missing">' in (layer / "index.html").read_text()  # unit 4: no page, no link


def test_another_networks_assets_are_refused(assets, tmp_path):
    from toolbox.atlas import write_atlas
    from toolbox.errors import UserError

    with pytest.raises(UserError, match="holds the assets of efficientnet_lite0, not efficientnet_lite2"):
        write_atlas("efficientnet_lite2", LAYERS[:1], assets, tmp_path / "site")  # same layer names, other model
    assert not (tmp_path / "site").exists()


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not chromedriver:
        pytest.skip("needs chromium and chromium-driver from apt (.ci/run installs them)")
    options = Options()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    yield driver
    driver.quit()


def _loaded(driver) -> list[tuple[str, int]]:
    """(src, natural width) of every image on the page, after scrolling each into view."""
    return driver.execute_script("""
        var images = Array.from(document.images);
        images.forEach(function (img) { img.loading = "eager"; img.scrollIntoView(); });
        return images.map(function (img) { return [img.getAttribute("src"), img.complete ? img.naturalWidth : -1]; });
    """)


@pytest.mark.slow
@pytest.mark.e2e
def test_in_chromium_every_index_link_resolves_and_images_load(site, assets, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get((site / "index.html").as_uri())
    assert browser.find_element(By.TAG_NAME, "h1").text == f"{MODEL}: unit atlas"
    links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "a")]
    assert len(links) == len(LAYERS) - 1  # block3_project_bn: nothing computed, listed without a page
    for link in links:
        browser.get(link)
        heading = browser.find_element(By.TAG_NAME, "h1").text
        assert heading in {name for name, _ in LAYERS}, link
        cells = browser.find_elements(By.CSS_SELECTOR, ".grid a")
        assert len(cells) == dict(LAYERS)[heading]
        WebDriverWait(browser, 10).until(lambda d: all(w != -1 for _, w in _loaded(d)))
        images = _loaded(browser)
        assert all(w > 0 for _, w in images), images
        said = said_of(assets)[heading]  # no image, and a cell that says so
        assert len(images) == 4 - len(said)
        assert len(browser.find_elements(By.CSS_SELECTOR, ".grid .missing")) == len(cells) - len(images)
        assert len(browser.find_elements(By.CSS_SELECTOR, ".grid .missing.nothing")) == len(said)
    u = shown_unit(assets)
    browser.get((site / "block2_add" / f"{u}.html").as_uri())
    WebDriverWait(browser, 10).until(lambda d: all(w != -1 for _, w in _loaded(d)))
    images = dict(_loaded(browser))
    assert images[f"img/{u}.png"] == 48 and images[f"crops/{u}_top.png"] > 48 and images[f"crops/{u}_bottom.png"] > 48


@pytest.mark.slow
@pytest.mark.e2e
def test_in_chromium_arrow_keys_move_between_units_and_layers(site, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get((site / "block2_add" / "0.html").as_uri())

    def press(key, expect: str) -> None:
        browser.find_element(By.TAG_NAME, "body").send_keys(key)
        WebDriverWait(browser, 10).until(lambda d: d.current_url.endswith(expect))

    press(Keys.ARROW_RIGHT, "block2_add/1.html")
    press(Keys.ARROW_RIGHT, "block2_add/2.html")
    press(Keys.ARROW_LEFT, "block2_add/1.html")
    press(Keys.ARROW_DOWN, "block4_dw_relu/1.html")  # past block3_project_bn: nothing computed
    press("u", "block2_add/1.html")
    press(Keys.ESCAPE, "block2_add/index.html")
    press(Keys.ARROW_RIGHT, "block2_add/0.html")


def test_the_command_writes_the_whole_network(assets, cache_dir, tmp_path, capsys):
    from toolbox.cli import main

    settings = tmp_path / "settings.yaml"
    settings.write_text(f"cache_dir: {cache_dir}\n")
    site = tmp_path / "site"
    assert main(["atlas", "--model", MODEL, "--assets", str(assets), "-o", str(site), "--settings", str(settings)]) == 0
    said = capsys.readouterr().out
    n = sum(len(units) for units in said_of(assets).values())
    assert (f"wrote 264 unit pages of 2 layers ({8 - n} with optimized images"
            + (f", {n} with nothing to show" if n else "") + ", 264 with crops)") in said  # not 5,184 pages of all 21
    assert "19 layers with nothing computed are listed on the index" in said
    assert not (site / "head_relu").exists() and (site / "block2_add" / "img" / f"{shown_unit(assets)}.png").is_file()
    relu = (site / "block4_dw_relu" / "0.html").read_text()
    assert "receptive field</th><td>67 px, stride 8" in relu  # the network's own, as the window shows
    assert main(["atlas", "--model", MODEL, "--assets", str(tmp_path / "none"), "-o", str(site),
                 "--settings", str(settings)]) == 2
