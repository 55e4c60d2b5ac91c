"""The organism's generated world: scenes of COCO objects, their pictures, truthful captions and POPE-style
questions.

Which objects share a scene follows COCO's own statistics: image-level category counts and pairwise
co-occurrence counts are computed from CHAIR's ground-truth file (coco2014_gt_objects.json, the objects of
each COCO 2014 image, from the CHAIR reference data) restricted to the categories drawn here. A scene starts
from a category drawn by COCO frequency; every further object is drawn in proportion to how often it
co-occurs in COCO with an object already in the scene. Nothing else links categories, so whatever the
language model learns about "which objects go together" is COCO's prior.

Each category has its own look (shape, colour, texture); objects vary in size, position, overlap and
contrast, and about a quarter are tiny or faint, so the visual evidence for them is weak. Captions are
truthful: they name every object (salient objects first, weak ones later, as people describe pictures)
with varied phrasings, COCO category names and some of CHAIR's synonyms; every sentence names an object.
Questions ask "Is there a X in the image?" about present objects (yes) and absent ones (no): absent objects
drawn uniformly (frequent ones included, at their uniform share) and by co-occurrence with the scene's objects.
"""
import json
import math

import numpy as np

# The drawn categories: single-word COCO category names with their official ids (COCO instances_val2014.json
# `categories`, cocodataset/cocoapi) and CHAIR synonyms (LisaAnne/Hallucination, data/synonyms.txt — the
# reference synonym list; only words listed there for the category are used).
CATEGORIES = [
    (1, "person", ["man", "woman", "people"]), (2, "bicycle", ["bike"]), (3, "car", ["taxi"]),
    (4, "motorcycle", ["motorbike"]), (6, "bus", []), (8, "truck", []), (9, "boat", ["ship"]),
    (15, "bench", []), (16, "bird", []), (17, "cat", ["kitten"]), (18, "dog", ["puppy"]), (19, "horse", ["pony"]),
    (20, "sheep", ["lamb"]), (21, "cow", ["cattle"]), (22, "elephant", []), (24, "zebra", []),
    (25, "giraffe", []), (28, "umbrella", []), (38, "kite", []), (42, "surfboard", []), (44, "bottle", []),
    (47, "cup", ["mug"]), (51, "bowl", []), (59, "pizza", []), (62, "chair", []), (63, "couch", ["sofa"]),
    (65, "bed", []), (70, "toilet", []), (72, "tv", ["television"]), (73, "laptop", ["computer"]),
    (81, "sink", []), (84, "book", []),
]
NAMES = [c[1] for c in CATEGORIES]
COCO_ID = {c[1]: c[0] for c in CATEGORIES}
SYNONYMS = {c[1]: c[2] for c in CATEGORIES}

SHAPES = ["circle", "square", "triangle", "diamond", "ring", "cross", "hbar", "vbar"]
TEXTURES = ["solid", "stripes", "dots", "checker"]
COLORS = np.array([[220, 40, 40], [40, 190, 60], [50, 80, 230], [235, 215, 40], [210, 60, 210],
                   [40, 210, 220], [245, 140, 30], [245, 245, 245]], dtype=np.float32)


def look(index):
    """Shape, texture and colour of category `index`: every (shape, colour) pair is distinct."""
    shape = index % 8
    texture = index // 8
    return SHAPES[shape], TEXTURES[texture], COLORS[(shape + 3 * texture) % 8]


class Statistics:
    """COCO 2014's image-level counts and pairwise co-occurrence counts over `NAMES`."""

    def __init__(self, gt_objects_path):
        with open(gt_objects_path) as f:
            objects = json.load(f)
        index = {n: i for i, n in enumerate(NAMES)}
        k = len(NAMES)
        self.freq = np.zeros(k)
        self.cooc = np.zeros((k, k))
        for names in objects.values():
            ids = sorted({index[n] for n in names if n in index})
            for a in ids:
                self.freq[a] += 1
                for b in ids:
                    if a != b:
                        self.cooc[a, b] += 1
        self.images = len(objects)

    def table(self):
        return {"images": self.images, "categories": NAMES, "frequency": self.freq.astype(int).tolist(),
                "cooccurrence": self.cooc.astype(int).tolist()}


def sample_scene(stats, rng):
    """Category indices of one scene (3–6 distinct categories), COCO-distributed as described above."""
    k = len(NAMES)
    count = int(rng.choice([3, 3, 4, 4, 5, 5, 6]))
    p = stats.freq / stats.freq.sum()
    scene = [int(rng.choice(k, p=p))]
    while len(scene) < count:
        anchor = scene[int(rng.integers(len(scene)))]
        w = stats.cooc[anchor].copy()
        w[scene] = 0
        if w.sum() == 0:
            w = stats.freq.copy()
            w[scene] = 0
        scene.append(int(rng.choice(k, p=w / w.sum())))
    return scene


def place_objects(scene, rng, size):
    """Boxes and contrast: about a quarter of the objects are weak evidence (tiny, or faint against the
    background); the rest are clear. Order is the drawing order (later objects may cover earlier ones)."""
    objects = []
    for c in scene:
        r = rng.random()
        if r < 0.12:
            side, alpha, weak = int(rng.integers(4, 7)), float(rng.uniform(0.75, 1.0)), True      # tiny
        elif r < 0.24:
            side, alpha, weak = int(rng.integers(9, 18)), float(rng.uniform(0.12, 0.3)), True     # faint
        else:
            side, alpha, weak = int(rng.integers(11, 25)), float(rng.uniform(0.8, 1.0)), False
        x = int(rng.integers(0, size - side + 1))
        y = int(rng.integers(0, size - side + 1))
        objects.append({"category": c, "x": x, "y": y, "side": side, "alpha": alpha, "weak": weak})
    return objects


def shape_mask(shape, side):
    """A side×side boolean mask of the shape (tested at pixel centres)."""
    t = (np.arange(side) + 0.5) / side * 2 - 1
    yy, xx = np.meshgrid(t, t, indexing="ij")
    if shape == "circle":
        return xx ** 2 + yy ** 2 <= 1
    if shape == "square":
        return np.abs(xx) <= 0.9
    if shape == "triangle":
        return (yy >= -0.95) & (np.abs(xx) <= (yy + 1) / 2)
    if shape == "diamond":
        return np.abs(xx) + np.abs(yy) <= 1
    if shape == "ring":
        d = xx ** 2 + yy ** 2
        return (d <= 1) & (d >= 0.3)
    if shape == "cross":
        return (np.abs(xx) <= 0.3) | (np.abs(yy) <= 0.3)
    if shape == "hbar":
        return np.abs(yy) <= 0.45
    return np.abs(xx) <= 0.45   # vbar


def texture_mask(texture, side):
    """Where the texture darkens the object's colour."""
    yy, xx = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    if texture == "stripes":
        return (yy // 2) % 2 == 0
    if texture == "dots":
        return (yy % 4 < 2) & (xx % 4 < 2)
    if texture == "checker":
        return ((yy // 3) + (xx // 3)) % 2 == 0
    return np.zeros((side, side), dtype=bool)


def render(objects, rng, size):
    """The scene as an RGB uint8 image: a shaded background with mild noise, objects alpha-blended."""
    base = rng.uniform(40, 200, size=3)
    tilt = rng.uniform(-50, 50, size=3)
    ramp = np.linspace(-0.5, 0.5, size, dtype=np.float32)
    if rng.random() < 0.5:
        grad = ramp[:, None, None] * tilt[None, None, :] + np.zeros((1, size, 1), np.float32)
    else:
        grad = ramp[None, :, None] * tilt[None, None, :] + np.zeros((size, 1, 1), np.float32)
    img = base[None, None, :] + grad + rng.normal(0, 3, size=(size, size, 3))
    for o in objects:
        shape, texture, color = look(o["category"])
        m = shape_mask(shape, o["side"])
        tex = texture_mask(texture, o["side"])
        fill = np.where(tex[:, :, None], color * 0.45, color)
        patch = img[o["y"]:o["y"] + o["side"], o["x"]:o["x"] + o["side"]]
        a = o["alpha"] * m[:, :, None]
        patch[:] = patch * (1 - a) + fill * a
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def where(o, size):
    cx = o["x"] + o["side"] / 2
    cy = o["y"] + o["side"] / 2
    h = "left" if cx < size / 3 else ("right" if cx > 2 * size / 3 else "")
    v = "top" if cy < size / 3 else ("bottom" if cy > 2 * size / 3 else "")
    if h and v:
        return f"in the {v} {h} corner"
    if h:
        return f"on the {h}"
    if v:
        return f"at the {v}"
    return "in the middle"


def word(name, rng):
    """The category name, or now and then one of its CHAIR synonyms."""
    syn = SYNONYMS[name]
    if syn and rng.random() < 0.15:
        return syn[int(rng.integers(len(syn)))]
    return name


def article(w):
    if w == "people":
        return "some"
    return "an" if w[0] in "aeiou" else "a"


FIRST = [
    "The image shows {a} {w} {where}.",
    "In this picture there is {a} {w}.",
    "This is a picture of {a} {w}.",
    "{A} {w} can be seen {where}.",
    "The photo shows {a} {w}.",
]
LATER = [
    "There is also {a} {w}.",
    "{A} {w} is {where}.",
    "I can see {a} {w}.",
    "Next to it there is {a} {w}.",
    "The picture also has {a} {w}.",
    "{A} {w} is near the {prev}.",
    "Further away there is {a} {w}.",
]


def caption(objects, rng, size):
    """A truthful description naming every object, most salient first (area × contrast), one sentence
    per object and no other sentence, phrasings drawn at random."""
    order = sorted(objects, key=lambda o: -(o["side"] ** 2) * o["alpha"])
    sentences = []
    prev = None
    for i, o in enumerate(order):
        w = word(NAMES[o["category"]], rng)
        a = article(w)
        pool = FIRST if i == 0 else [t for t in LATER if prev is not None or "{prev}" not in t]
        t = pool[int(rng.integers(len(pool)))]
        s = t.format(a=a, A=a.capitalize(), w=w, where=where(o, size), prev=prev)
        sentences.append(s)
        prev = NAMES[o["category"]]
    return " ".join(sentences)


def questions(scene, stats, rng, per_kind=1):
    """(object, answer) pairs: present objects (yes; three per `per_kind`, at most the scene's), and three
    distinct absent ones (no): two drawn uniformly from the absent categories, one by co-occurrence with the
    scene's objects (as POPE's adversarial split draws them). None is drawn by COCO frequency (POPE's popular
    split): such a "No" teaches the model to reject exactly the frequent objects and so removes the frequency
    prior that the popular split measures. Absent frequent objects are still asked about: at their uniform
    share, and often as the co-occurring one (COCO's frequent categories co-occur with most others)."""
    k = len(NAMES)
    absent = [c for c in range(k) if c not in scene]
    out = []
    for c in rng.choice(scene, size=min(len(scene), 3 * per_kind), replace=False):
        out.append((NAMES[int(c)], "Yes"))
    uniform = [int(c) for c in rng.choice(absent, size=2, replace=False)]
    rest = [c for c in absent if c not in uniform]
    co = stats.cooc[scene][:, rest].sum(axis=0) + 1e-9
    for c in uniform + [int(rng.choice(rest, p=co / co.sum()))]:
        out.append((NAMES[c], "No"))
    return out


CAPTION_PROMPT = "Please describe this image in detail."
POPE_SUFFIX = " Answer the question using a single word or phrase."


def question_text(name):
    return f"Is there a {name} in the image?"


def make_scene(stats, seed_pair, size, draw=True):
    """One scene from a seed pair: (stream, index); training and held-out sets use different streams.
    Captions and questions drawn from the returned rng differ with `draw` (the picture uses the rng)."""
    rng = np.random.default_rng(list(seed_pair))
    scene = sample_scene(stats, rng)
    objects = place_objects(scene, rng, size)
    image = render(objects, rng, size) if draw else None
    return scene, objects, image, rng


def sentence_corpus(stats, size, n, stream):
    """Text the tokenizer is trained on: captions and questions of `n` scenes."""
    lines = []
    for i in range(n):
        scene, objects, _, rng = make_scene(stats, (stream, i), size, draw=False)
        lines.append(caption(objects, rng, size))
        for name, ans in questions(scene, stats, rng):
            lines.append(question_text(name) + POPE_SUFFIX + " " + ans)
    for name in NAMES:
        for w in [name] + SYNONYMS[name]:
            lines.append(f"{article(w)} {w}")
    return lines


if __name__ == "__main__":
    import sys
    s = Statistics(sys.argv[1])
    for i in range(3):
        scene, objects, image, rng = make_scene(s, (1, i), 96)
        print([NAMES[c] for c in scene], caption(objects, rng, 96), questions(scene, s, rng))
