"""Inputs, round two (issue 19): images whose network input would be out of bounds, refused before any work
for the library, ``hhrt image`` and the server alike.

Each test failed on the code before the issue's fixes (the issue's item number is in its docstring).
"""

from __future__ import annotations

import asyncio
import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from hhrnet_rt.cli import app
from hhrnet_rt.cli.app import EXIT_INPUT
from hhrnet_rt.core.errors import ImageShapeError
from hhrnet_rt.runtime.preprocess import DEFAULT_MAX_ASPECT, check_aspect
from hhrnet_rt.serve.handler import RequestHandler, ServeSettings

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- item 3: the aspect-ratio bomb ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hw", "ok"),
    [((512, 2048), True), ((2048, 512), True), ((480, 640), True), ((100, 401), False), ((1, 250), False),
     ((250, 1), False), ((1, 1), True)],
)  # fmt: skip
def test_the_network_input_is_bounded_by_the_aspect_ratio(hw, ok):
    """Item 3: a 1x250 PNG (233 bytes) passed every check and became a 512x128000 input (3.3 GB in a
    replica); the bound is area <= 4 x input_size², i.e. aspect ratios up to 4:1."""
    if ok:
        check_aspect(hw, 512)
    else:
        with pytest.raises(ImageShapeError, match=r"aspect ratio .*the bound is 4:1"):
            check_aspect(hw, 512)
    check_aspect((1, 250), 512, max_aspect=512.0)  # the option raises it


def test_the_estimator_refuses_a_strip_at_once_and_takes_it_with_a_raised_bound(tiny_estimator):
    """Item 3 (library): ``predict`` on a 1x500 strip took 50 s and 6.9 GB; now it is refused before the warp."""
    strip = np.full((2, 500, 3), 120, np.uint8)
    estimator = tiny_estimator()
    assert estimator.max_aspect == DEFAULT_MAX_ASPECT
    with pytest.raises(ImageShapeError, match="max_aspect=250"):
        estimator.predict(strip)
    wide = np.full((64, 320, 3), 120, np.uint8)  # 5:1 at input 128: a 640x128 input
    with pytest.raises(ImageShapeError):
        estimator.predict(wide)
    assert len(tiny_estimator(max_aspect=5.0).predict(wide)) >= 0


def test_hhrt_image_says_the_ratio_and_the_bound(tmp_path, tiny):
    """Item 3 (CLI): exit 2 with the ratio, the bound and the option; no traceback, no output written."""
    cv2.imwrite(str(tmp_path / "strip.png"), np.full((1, 250, 3), 200, np.uint8))
    out = tmp_path / "out"
    result = runner.invoke(app, ["image", str(tmp_path / "strip.png"), *tiny, "--out", str(out)])
    assert result.exit_code == EXIT_INPUT, result.output
    assert "Traceback" not in result.output
    assert "250:1" in result.output and "4:1" in result.output and "--max-aspect" in result.output
    assert not out.exists() or list(out.iterdir()) == []


def test_the_server_answers_413_before_batching():
    """Item 3 (serve): the handler refuses the image with 413 before it reaches the batch (where it would
    have failed the other requests batched with it)."""
    predicted = []

    async def predict(image):
        predicted.append(image.shape)
        raise AssertionError("the model must not run")

    def check_shape(hw):
        check_aspect(hw, 512)

    handler = RequestHandler(ServeSettings(), predict, {}, check_shape)
    ok, png = cv2.imencode(".png", np.full((1, 250, 3), 200, np.uint8))
    assert ok

    async def body():
        yield png.tobytes()

    answer = asyncio.run(handler.answer("POST", "/v1/poses", {}, body))
    assert answer.status == 413, answer.body
    assert "aspect ratio" in json.loads(answer.body)["error"] and predicted == []


# -- item 18: a damaged checkpoint ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_checkpoint_with_nan_or_inf_weights_is_refused_on_load(tmp_path, tiny_weights, bad):
    """Item 18: one NaN weight made every frame's answer "no people", with exit 0; now loading it fails
    (exit 3) and names the tensor."""
    from hhrnet_rt.cli.app import EXIT_WEIGHTS

    arrays = dict(np.load(tiny_weights))
    name = next(k for k, v in arrays.items() if v.dtype.kind == "f" and k.endswith("weight"))
    arrays[name] = arrays[name].copy()
    arrays[name].flat[0] = bad
    damaged = tmp_path / "damaged.npz"
    np.savez(damaged, **arrays)
    image = tmp_path / "people.png"
    cv2.imwrite(str(image), np.full((64, 64, 3), 90, np.uint8))
    args = ["image", str(image), "--weights", str(damaged), "--backend", "torch", "--input-size", "64"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == EXIT_WEIGHTS, result.output
    assert "NaN or infinite" in result.output and name in result.output
