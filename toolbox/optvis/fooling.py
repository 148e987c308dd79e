"""Fooling images: a change too small to see that makes the network predict another class
(Szegedy et al. 2013), and images made from noise that the network is sure show a class
(Nguyen et al. 2015).

Both are gradient ascent on the target's log-probability in pixel space. The small change is
projected after every step back into the box of ``epsilon`` around the photo (projected
gradient ascent, Adam steps of ``epsilon / 2``). The verdict that counts is the network's on
the 8-bit image as it will be written, checked every few steps: the run stops as soon as
every image reaches ``confidence`` there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from toolbox.nets import Network
from toolbox.optvis import params, transforms
from toolbox.optvis.classes import Classifier
from toolbox.optvis.objectives import class_log_probability
from toolbox.optvis.presets import Preset
from toolbox.optvis.render import Ascent
from toolbox.optvis.updates import Adam
from toolbox.settings import FoolSettings

_DEFAULTS = FoolSettings()  # the one place for default numbers is toolbox.settings

CHECK_EVERY = 5  # steps between two looks at the 8-bit images


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 images (inf when equal)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0 ** 2 / mse)


@dataclass(frozen=True)
class Fooled:
    images: np.ndarray  # (n, H, W, 3) uint8, as they will be written
    targets: tuple[int, ...]
    probabilities: np.ndarray  # (n, classes) on the uint8 images
    steps: int  # steps taken

    @property
    def target_probabilities(self) -> np.ndarray:
        return self.probabilities[np.arange(len(self.targets)), list(self.targets)]


class Fooler:
    """Compiled once per network and update size; photos, targets and epsilon change freely."""

    def __init__(self, network: Network, lr: float, classifier: Classifier | None = None) -> None:
        self.network = network
        self.classifier = classifier or Classifier(network)
        # the box the values must stay in, per pixel; reassigned for every run (shape may change)
        self._lo = tf.Variable(np.zeros((1, 1, 1, 3), np.float32), shape=tf.TensorShape(None), trainable=False)
        self._hi = tf.Variable(np.zeros((1, 1, 1, 3), np.float32), shape=tf.TensorShape(None), trainable=False)
        preset = Preset("fool", params.pixels(), transforms.unchanged, Adam(lr=lr))
        self._ascent = Ascent(network, class_log_probability(None), preset, pre_relu=False,
                              project=lambda values: tf.clip_by_value(values, self._lo, self._hi))

    def run(self, start: np.ndarray, lo: np.ndarray, hi: np.ndarray, targets: Sequence[int], confidence: float,
            max_steps: int, on_step: Callable[[], None] | None = None) -> Fooled:
        """Ascend from ``start`` (uint8 or float pixels in [0, 255]) within [lo, hi] (pixels)."""
        self._lo.assign(params.pixel_values(lo))
        self._hi.assign(params.pixel_values(hi))
        size = start.shape[1]
        if start.shape[1] != start.shape[2]:
            raise ValueError("fooling works on square images (the network's input view)")
        run = self._ascent.start(list(targets), size, max_steps, init=params.pixel_values(start))
        images = run.images()
        probabilities = self.classifier(images)
        while not run.done:
            reached = probabilities[np.arange(len(targets)), list(targets)]
            if np.all(reached >= confidence):
                break
            for _ in range(min(CHECK_EVERY, run.steps - run.taken)):
                run.step()
                if on_step is not None:
                    on_step()
            images = run.images()
            probabilities = self.classifier(images)
        return Fooled(images, tuple(int(t) for t in targets), probabilities, run.taken)


def fool_photos(network: Network, photos: np.ndarray, targets: Sequence[int], epsilon: float,
                confidence: float = _DEFAULTS.confidence, max_steps: int = _DEFAULTS.steps, fooler: Fooler | None = None,
                on_step: Callable[[], None] | None = None, classifier: Classifier | None = None) -> Fooled:
    """Change each photo (n, S, S, 3) uint8 by at most ``epsilon`` (a fraction of the full
    range) per pixel value so that the network predicts its target. ``classifier``: one the
    caller already compiled, for a new ``fooler``'s verdicts."""
    photos = np.asarray(photos, np.float32)
    delta = epsilon * 255.0
    lo, hi = np.clip(photos - delta, 0, 255), np.clip(photos + delta, 0, 255)
    fooler = fooler or Fooler(network, lr=epsilon / 2, classifier=classifier)
    return fooler.run(photos, lo, hi, targets, confidence, max_steps, on_step)


def fool_from_noise(network: Network, targets: Sequence[int], size: int, confidence: float = _DEFAULTS.confidence,
                    max_steps: int = _DEFAULTS.steps, seed: int = 0, lr: float = 0.01,
                    on_step: Callable[[], None] | None = None, classifier: Classifier | None = None) -> Fooled:
    """Images that start as uniform noise and end, still looking like noise, classified as
    their targets with at least ``confidence`` (unless ``max_steps`` runs out first)."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(0, 255, (len(targets), size, size, 3)).astype(np.float32)
    lo, hi = np.zeros_like(start), np.full_like(start, 255.0)
    return Fooler(network, lr, classifier).run(start, lo, hi, targets, confidence, max_steps, on_step)


# -- fooling a photo at its own size ------------------------------------------------------


@dataclass(frozen=True)
class _Axis:
    """One axis of the fit as a banded matrix: output i = sum_j weights[i, j] * input[starts[i] + j]."""

    starts: np.ndarray  # (n_out,) int
    weights: np.ndarray  # (n_out, band) float32, zero past each row's band
    n_in: int

    @staticmethod
    def of(dense: np.ndarray) -> "_Axis":
        """From the dense (n_out, n_in) matrix."""
        nonzero = np.abs(dense) > 0
        starts = np.where(nonzero.any(1), nonzero.argmax(1), 0)
        ends = dense.shape[1] - np.where(nonzero.any(1), nonzero[:, ::-1].argmax(1), dense.shape[1])
        band = int(max(1, (ends - starts).max()))
        starts = np.minimum(starts, dense.shape[1] - band)
        weights = np.stack([dense[i, s:s + band] for i, s in enumerate(starts)]).astype(np.float32)
        return _Axis(starts, weights, dense.shape[1])

    def adjoint(self, g: np.ndarray) -> np.ndarray:
        """(n_out, ...) -> (n_in, ...): the transpose applied along the first axis."""
        out = np.zeros((self.n_in, *g.shape[1:]), np.float32)
        distinct = bool(np.all(np.diff(self.starts) > 0))  # shrinking: no two rows start alike
        for j in range(self.weights.shape[1]):
            w = self.weights[:, j].reshape(-1, *([1] * (g.ndim - 1)))
            if distinct:  # each target once per j: a plain indexed add (np.add.at is ten times slower)
                out[self.starts + j] += w * g
            else:
                np.add.at(out, self.starts + j, w * g)
        return out


def _axis_operator(n_in: int, n_out: int) -> _Axis:
    """The fit along one axis, read off ``images.resize`` itself applied to an identity image:
    resizing is separable, and an n x n identity shrinks (or grows) by the same factor as the
    square the network fits, so it picks the same interpolation (for a letterbox, whose two
    factors differ by rounding only, nearly always: the verdict is taken on the real fit)."""
    from toolbox.images import resize

    dense = resize(np.eye(n_in, dtype=np.float32), n_in, n_out)
    return _Axis.of(np.asarray(dense, np.float32).reshape(n_out, n_in))


class PhotoFit:
    """The network's fit of one photo (``images.fit_square``: centre crop or letterbox, then
    resize) as a linear map of pixel values: ``forward`` is the fit itself (on float pixels),
    ``adjoint`` carries a gradient on the fitted view back to the photo's pixels, so a change
    can be made at the photo's own size through the very fit the network applies."""

    def __init__(self, height: int, width: int, size: int, mode: str = "crop") -> None:
        from toolbox.images import fit_square

        self.height, self.width, self.size, self.mode = height, width, size, mode
        self._fit = lambda pixels: fit_square(pixels, size, mode)
        if mode == "crop":
            side = min(height, width)
            self.box = ((height - side) // 2, (width - side) // 2, side, side)  # y, x, h, w of what is seen
            self.place = (0, 0, size, size)
        else:  # letterbox: the whole photo, scaled into the middle of a black square
            s = size / max(height, width)
            nh, nw = max(1, round(height * s)), max(1, round(width * s))
            self.box = (0, 0, height, width)
            self.place = ((size - nh) // 2, (size - nw) // 2, nh, nw)
        _, _, bh, bw = self.box
        _, _, ph, pw = self.place
        self._rows = _axis_operator(bh, ph)
        self._cols = _axis_operator(bw, pw)

    def forward(self, pixels: np.ndarray) -> np.ndarray:
        """(H, W, 3) float pixels -> (size, size, 3) float32: the fitted view, before rounding."""
        if self.mode == "crop":
            return np.asarray(self._fit(np.asarray(pixels, np.float32)), np.float32)
        y, x, h, w = self.place
        from toolbox.images import resize

        out = np.zeros((self.size, self.size, 3), np.float32)
        out[y:y + h, x:x + w] = resize(np.asarray(pixels, np.float32), w, h)
        return out

    def adjoint(self, gradient: np.ndarray) -> np.ndarray:
        """(size, size, 3) gradient on the fitted view -> (H, W, 3) on the photo (zero where the
        network does not look)."""
        py, px, ph, pw = self.place
        g = np.asarray(gradient, np.float32)[py:py + ph, px:px + pw]
        g = self._rows.adjoint(g)  # (bh, pw, 3)
        g = np.swapaxes(self._cols.adjoint(np.swapaxes(g, 0, 1)), 0, 1)  # (bh, bw, 3)
        out = np.zeros((self.height, self.width, 3), np.float32)
        by, bx, bh, bw = self.box
        out[by:by + bh, bx:bx + bw] = g
        return out


class _LogProbabilityGradient:
    """d log p(target) / d pixels of the network's square input, compiled once (any size)."""

    def __init__(self, network: Network) -> None:
        from toolbox.nets.network import LOGITS

        view = network.view([LOGITS])

        @tf.function(input_signature=[tf.TensorSpec((1, None, None, 3), tf.float32), tf.TensorSpec((), tf.int32)])
        def gradient(pixels: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
            with tf.GradientTape() as tape:
                tape.watch(pixels)
                logits = view(network.normalize(pixels), training=False)[LOGITS]
                log_p = tf.nn.log_softmax(logits, axis=-1)[0, target]
            return tape.gradient(log_p, pixels)[0]

        self._gradient = gradient

    def __call__(self, pixels: np.ndarray, target: int) -> np.ndarray:
        return self._gradient(tf.constant(pixels[None], tf.float32), tf.constant(target, tf.int32)).numpy()


@dataclass(frozen=True)
class FooledPhoto:
    image: np.ndarray  # (H, W, 3) uint8: the photo, changed, at its own size
    probabilities: np.ndarray  # the network's verdict on the image fitted as it fits any photo
    steps: int


def fool_photo(network: Network, photo: np.ndarray, target: int, epsilon: float, fit: str = "crop",
               confidence: float = _DEFAULTS.confidence, max_steps: int = _DEFAULTS.steps,
               on_step: Callable[[], None] | None = None, classifier: Classifier | None = None) -> FooledPhoto:
    """Change the photo (H, W, 3) uint8 at its own size by at most ``epsilon`` (a fraction of
    the full range) per pixel value, so that the network, fitting it as it fits any photo
    (``fit``: crop or letterbox), predicts ``target``. Projected gradient ascent on the
    target's log-probability with sign steps of a quarter of epsilon, the gradient carried
    from the fitted view back to the photo through the fit (``PhotoFit``); the verdict is the
    network's on the 8-bit photo fitted exactly as ``predict`` fits it."""
    classifier = classifier or Classifier(network)
    photo = np.asarray(photo, np.uint8)
    h, w = photo.shape[:2]
    operator = PhotoFit(h, w, network.spec.input_size, fit)
    gradient = _LogProbabilityGradient(network)
    original = photo.astype(np.float32)
    delta = np.floor(epsilon * 255.0 + 1e-6)  # whole levels: the written file holds integers
    lo, hi = np.clip(original - delta, 0, 255), np.clip(original + delta, 0, 255)
    step = max(delta / 4.0, 0.25)
    x = original.copy()
    steps = 0

    def verdict(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        image = np.clip(np.round(pixels), 0, 255).astype(np.uint8)
        return image, classifier(network.fit_input(image, fit)[None])[0]

    image, probabilities = verdict(x)
    while steps < max_steps and probabilities[target] < confidence:
        for _ in range(min(CHECK_EVERY, max_steps - steps)):
            g = operator.adjoint(gradient(operator.forward(x), target))
            x = np.clip(x + step * np.sign(g), lo, hi)
            steps += 1
            if on_step is not None:
                on_step()
        image, probabilities = verdict(x)
    return FooledPhoto(image, probabilities, steps)
