from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "hdr"


@pytest.fixture
def hdr_dir() -> Path:
    """Four real 256x128 CC0 HDR panoramas shipped with the tests."""
    return FIXTURES


@pytest.fixture
def split_file(tmp_path) -> Path:
    """Hold out one fixture so training code paths with validation run."""
    p = tmp_path / "val.txt"
    p.write_text("3ddemodata_chinese_garden.exr\n")
    return p
