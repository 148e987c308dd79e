"""Issue 32: '--class motorcycle' finds classes by meaning. ImageNet's classes are WordNet noun
synsets; a name that is no label is matched through the table that
scripts/make_class_meanings.py made from WordNet 3.0 (toolbox/outputs/class_meanings.tsv.gz)."""

from __future__ import annotations

import gzip
import logging
import re
import subprocess
import sys
import zipfile

import pytest

from conftest import EXAMPLES, REPO, deepvis
from toolbox.errors import UserError
from toolbox.outputs import meanings
from toolbox.outputs.attribution import class_index
from toolbox.settings import bundled


def _labels(name: str) -> list[str]:
    return [line.strip() for line in (bundled("models") / name).read_text().splitlines() if line.strip()]


IMAGENET = _labels("imagenet_labels.txt")


@pytest.fixture(autouse=True)
def fresh_table():
    """Each test reads the table (and the labels) anew, as a new process would."""
    caches = (meanings._table, meanings._positions, meanings._imagenet_labels)
    for cache in caches:
        cache.cache_clear()
    yield
    for cache in caches:
        cache.cache_clear()


def _message(labels, name: str) -> str:
    with pytest.raises(UserError) as error:
        class_index(labels, name)
    return str(error.value)


def test_motorcycle_names_moped_beneath_and_motor_scooter_nearest():
    """Moped is a motorbike, a hyponym of motorcycle; motor scooter is a 'wheeled vehicle' in
    WordNet, 4 links away, and comes in as the nearest by meaning: listed, never guessed."""
    message = _message(IMAGENET, "motorcycle")
    assert "moped (665)" in message and "motor scooter (670)" in message
    assert "nearest by meaning: motor scooter (670)" in message
    assert "\n" not in message and "tricycle" not in message  # no longer the spelling guess
    assert _message(IMAGENET, "Motorcycles") == message.replace("'motorcycle'", "'Motorcycles'")  # a plural


def test_rocket_finds_missile():
    message = _message(IMAGENET, "rocket")
    assert "missile (657)" in message and "projectile (744)" in message


def test_a_name_with_many_classes_beneath_lists_some_with_their_count():
    message = _message(IMAGENET, "dog")
    count = int(re.search(r"covers (\d+) classes", message)[1])
    assert 118 <= count <= 121 and "Chihuahua (151)" in message and "more" in message
    assert "Persian cat" not in message
    bird = _message(IMAGENET, "birds")
    assert "cock (7)" in bird and "goldfinch (11)" in bird
    car = _message(IMAGENET, "car")
    assert "ambulance (407)" in car and "convertible (511)" in car


def test_a_name_that_stands_for_one_class_is_taken_and_said(caplog):
    caplog.set_level(logging.INFO, logger="toolbox")
    assert IMAGENET[class_index(IMAGENET, "teddy bear")] == "teddy"  # a WordNet synonym of the class
    assert IMAGENET[class_index(IMAGENET, "athlete")] == "ballplayer"  # the one class beneath, nothing near
    assert IMAGENET[class_index(IMAGENET, "red_panda")] == "lesser panda"
    said = [r.getMessage() for r in caplog.records]
    assert "teddy bear: taking teddy (850), the class it means" in said
    assert any(m.startswith("athlete: taking ballplayer (981)") for m in said)


def test_labels_and_their_words_come_first():
    """Exact labels win over meanings ('plane' is the carpenter's plane, though it also means
    airliner), as do the words of one label when the name means nothing more."""
    assert class_index(IMAGENET, "plane") == 726
    assert IMAGENET[class_index(IMAGENET, "tiger")] == "tiger"
    assert IMAGENET[class_index(IMAGENET, "egyptian")] == "Egyptian cat"
    assert IMAGENET[class_index(IMAGENET, "scooter")] == "motor scooter"
    assert "one of several: 134, 517" in _message(IMAGENET, "crane")
    cat = _message(IMAGENET, "cat")  # the words of several labels, and the big cats by meaning
    assert "tiger cat (282)" in cat and "lynx (287)" in cat and "polecat" not in cat


def test_words_of_one_label_are_not_taken_when_the_name_means_more():
    bike = _message(IMAGENET, "bike")
    assert "mountain bike (671)" in bike and "bicycle-built-for-two (444)" in bike and "moped (665)" in bike
    phone = _message(IMAGENET, "phone")
    assert "pay-phone (707)" in phone and "cellular telephone (487)" in phone


def test_a_noun_with_no_class_beneath_gets_suggestions_never_a_guess():
    assert "(nearest by meaning: ox (345))" in _message(IMAGENET, "cow")
    wrench = _message(IMAGENET, "wrench")
    assert wrench.startswith("unknown class 'wrench' (nearest by meaning:") and "hammer (587)" in wrench
    assert "did you mean: espresso" in _message(IMAGENET, "espreso")  # no noun: spelling as before


def test_other_label_lists_match_as_before():
    own = ["moped", "motor scooter", "tabby"]
    message = _message(own, "motorcycle")
    assert "by meaning" not in message
    almost = list(IMAGENET)
    almost[665] = "mope"  # not the ImageNet labels any more
    assert "by meaning" not in _message(almost, "motorcycle")
    assert class_index(own, "moped") == 0


def test_googlenet_labels_are_the_same_classes_in_another_order():
    labels = _labels("googlenet_labels.txt")
    message = _message(labels, "motorcycle")
    assert f"moped ({labels.index('moped')})" in message
    assert f"motor scooter ({labels.index('motor scooter')})" in message
    assert labels[class_index(labels, "teddy bear")] == "teddy"


@pytest.mark.parametrize("damage", ["garbage", "cut", "columns", "oversized", "missing", "bomb"])
def test_a_damaged_table_falls_back_to_spelling_with_a_warning(tmp_path, monkeypatch, caplog, damage):
    good = meanings.TABLE.read_bytes()
    table = tmp_path / "class_meanings.tsv.gz"
    if damage == "garbage":
        table.write_bytes(b"not gzip at all")
    elif damage == "cut":
        table.write_bytes(good[: len(good) // 2])
    elif damage == "columns":
        table.write_bytes(gzip.compress(b"motorcycle\t665\n"))
    elif damage == "oversized":
        table.write_bytes(good)
        monkeypatch.setattr(meanings, "MAX_TABLE_BYTES", len(good) - 1)
    elif damage == "bomb":
        table.write_bytes(gzip.compress(b"#" * (meanings.MAX_TEXT_BYTES + 10)))
    monkeypatch.setattr(meanings, "TABLE", table)
    caplog.set_level(logging.WARNING, logger="toolbox")
    message = _message(IMAGENET, "motorcycle")
    assert "by meaning" not in message and message.startswith("unknown class 'motorcycle'")
    assert class_index(IMAGENET, "motor scooter") == 670
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "spelling only" in warnings[0]


@pytest.mark.slow
def test_the_commands_take_names_by_meaning(settings_file):
    """fool, attribute and classes all go through class_index: one-line messages, exit code 2."""
    r = deepvis("fool", str(EXAMPLES / "coffee.png"), "--target", "motorcycle", "-o", "/tmp/f.png",
                settings=settings_file)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert "moped (665)" in last and "nearest by meaning: motor scooter (670)" in last
    r = deepvis("classes", "--classes", "magpie,rocket", "-o", "/tmp/c", settings=settings_file)
    assert r.returncode == 2 and "missile (657)" in r.stderr.strip().splitlines()[-1]


def test_the_shipped_table_is_small_and_whole():
    assert meanings.TABLE.stat().st_size < meanings.MAX_TABLE_BYTES
    table = meanings._table()
    assert len(table) > 5000 and all(i < 1000 for row in table.values() for column in row for i in column)
    assert table["dog"][0] == tuple(range(151, 269))  # the 118 dogs
    assert "WordNet Release 3.0" in gzip.decompress(meanings.TABLE.read_bytes()).decode()[:2000]  # its licence


@pytest.mark.slow
def test_a_plain_install_carries_the_table(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                        "-w", str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    (wheel,) = tmp_path.glob("deepvis-*.whl")
    with zipfile.ZipFile(wheel) as z:
        assert z.read("toolbox/outputs/class_meanings.tsv.gz") == meanings.TABLE.read_bytes()
