"""Bad input on the command line and in files gives one line and exit code 2: decompression bombs for
`debug`, `--out` at a file or a symbolic link, class numbers that do not fit any integer type."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from artifact_helpers import SMALL_CLI, world_circuit, world_images
from PIL import Image

from neurflow_kb.errors import UserError
from neurflow_kb_dev.cli_runs import invoke, one_line_error


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG file whose header claims `width` x `height` pixels (a decompression bomb's shape)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from neurflow_kb.store import LadybugStore

    path = tmp_path_factory.mktemp("kb") / "kb.lbug"
    with LadybugStore(path) as st:
        st.write_circuit(world_circuit())
    return path


@pytest.mark.parametrize("pixels", [(20_000, 20_000), (10_000, 10_000)], ids=["error", "warning"])
def test_debug_refuses_a_decompression_bomb_in_one_line(tmp_path: Path, pixels: tuple[int, int]) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_claiming(*pixels))
    assert pixels[0] * pixels[1] > Image.MAX_IMAGE_PIXELS       # Pillow's limit (warning above it)
    for extra in ([], ["--class", "0", "--artifact", str(world_circuit().save(tmp_path / "art"))]):
        r = invoke(["debug", str(bomb), "--model", "world", "-o", str(tmp_path / "x.html"), *extra])
        one_line_error(r, "bomb.png", "pixels")
    from neurflow_kb.debug import debug_image
    from neurflow_kb.models import get_adapter
    from neurflow_kb.viewer import from_circuit

    with pytest.raises(UserError, match="decompression bomb"):
        debug_image(get_adapter("world"), bomb, from_circuit(world_circuit()))


def test_out_at_a_file_or_a_symlink_is_refused(tmp_path: Path) -> None:
    images = world_images(tmp_path / "images")
    target = tmp_path / "real"
    target.mkdir()
    for out, needle in ((tmp_path / "a-file", "not a folder"), (tmp_path / "link", "symbolic link"),
                        (tmp_path / "dangling", "symbolic link")):
        if out.name == "a-file":
            out.write_text("x")
        elif out.name == "link":
            out.symlink_to(target, target_is_directory=True)
        else:
            out.symlink_to(tmp_path / "nowhere")
        r = invoke(["circuit", "--model", "world", "--images", str(images), "--class", "0", "--out", str(out),
                    *SMALL_CLI])
        one_line_error(r, needle)
    assert (tmp_path / "a-file").read_text() == "x" and list(target.iterdir()) == []
    assert not (tmp_path / "nowhere").exists()


HUGE = "99999999999999999999"


@pytest.mark.parametrize(("command", "rest"), [
    (["query", "drivers"], [HUGE]), (["query", "drivers"], ["--", "-" + HUGE]),
    (["query", "circuit"], [HUGE]),
    (["query", "runs"], ["--class", HUGE]), (["query", "shared"], [HUGE, "0"]), (["view"], ["--class", HUGE]),
    (["query", "drivers"], ["²"]),
])
def test_huge_class_numbers_in_store_commands_are_one_line(store: Path, tmp_path: Path, command: list[str],
                                                           rest: list[str]) -> None:
    out = ["-o", str(tmp_path / "v.html")] if command == ["view"] else []
    line = one_line_error(invoke([*command, "--store", str(store), *out, *rest]), "class")
    assert "cast" not in line and "C++" not in line


@pytest.mark.parametrize("cls", [HUGE, "-" + HUGE, "²", "1e3"])
def test_huge_or_odd_class_numbers_for_circuit_and_debug(tmp_path: Path, cls: str) -> None:
    images = world_images(tmp_path / "images")
    r = invoke(["circuit", "--model", "world", "--images", str(images), "--class", cls,
                "--out", str(tmp_path / "out"), *SMALL_CLI])
    one_line_error(r, "class")
    image = next(images.rglob("*.png"))
    r = invoke(["debug", str(image), "--model", "world", "--class", cls, "-o", str(tmp_path / "x.html")])
    one_line_error(r, "class")


@pytest.mark.parametrize(("option", "needle"), [("--seed", "seed"), ("--ig-steps", "ig_steps"),
                                                ("--top-k", "top_k"), ("--batch-size", "batch_size")])
def test_huge_engine_settings_fail_before_any_work(tmp_path: Path, option: str, needle: str) -> None:
    images = world_images(tmp_path / "images")
    r = invoke(["circuit", "--model", "world", "--images", str(images), "--class", "0", "--out",
                str(tmp_path / "out"), *SMALL_CLI, option, HUGE])
    one_line_error(r, needle)
    assert not (tmp_path / "out").exists()
