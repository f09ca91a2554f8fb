"""The HTML report: self-contained, escaped, linked; and drawn for real in headless chromium.

The browser test renders a real failing run (legacy under power loss and a full disk),
screenshots it with Debian's chromium and decodes the PNG with zlib: the picture must be
there and carry the timeline's own colours (violation rings, fault triangles, entry
states). ``make browser`` (called by ``make test``) installs chromium when it can.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from harness import _svg, cli, html, scenarios
from harness.runner import run_suite

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def failing_run() -> dict:
    chosen = scenarios.select(["power-loss", "disk-full"], scenarios.default_dir())
    run = run_suite("legacy", chosen)
    assert run["status"] == "fail", "legacy is expected to fail these scenarios"
    return run


def _scenario(status: str, detail: str = "entry e1: lost") -> dict:
    violations = [{"kind": "lost", "entry": "e1", "detail": detail, "ops": [3, 5],
                   "faults": ["DiskFull(after_bytes=1)"]}] if status == "fail" else []
    timeline = {"end": 10, "drain_at": 8,
                "calls": [[1, 5, 0, "enqueue", "e1", "ok", None],
                          [6, 7, 0, "claim", None, "info", "OSError: boom"]],
                "marks": [[4, 0, "disk_full", 0, "write q/x -> ENOSPC", []]],
                "faults": ["DiskFull(after_bytes=1)"]}
    return {"name": f"sc-{status}", "fault": "disk_full", "faults": ["DiskFull(after_bytes=1)"],
            "faults_fired": 1, "ops": 9, "entries": 1, "seed": 1, "status": status,
            "violations": violations, "counts": {"lost": len(violations)},
            "observations": [], "replay": f"harness run --scenario sc-{status} --seed 1",
            "description": "d", "duration_s": 0.1,
            **({"timeline": timeline} if status != "pass" else {})}


def test_only_scenarios_that_did_not_pass_get_a_timeline():
    page = html.render({"target": "t", "scenarios": [_scenario("pass"), _scenario("fail")]})
    assert page.count('aria-label="timeline by entry"') == 1
    assert page.count('aria-label="timeline by processor"') == 1
    assert "harness run --scenario sc-fail --seed 1" in page


def test_the_page_fetches_nothing_and_runs_no_script(failing_run):
    page = html.render(failing_run)
    assert "<script" not in page and "<link" not in page and "src=" not in page
    assert "@import" not in page and "url(" not in page
    # the only URL is the SVG namespace, which is a name, not a fetch
    urls = set(re.findall(r"https?://[^\s\"'<>]+", page))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls


def test_run_text_is_escaped():
    evil = '<script>alert(1)</script> & "quoted" \x1b[31m'
    page = html.render({"target": "<b>t</b>", "scenarios": [_scenario("fail", evil)]})
    assert "<script>" not in page and "<b>t</b>" not in page
    assert "&lt;script&gt;" in page and "\x1b" not in page


def test_every_violation_ring_links_to_its_explanation(failing_run):
    page = html.render(failing_run)
    ids = set(re.findall(r'<li id="([^"]+)"', page))
    links = set(re.findall(r'href="#([^"]+-v\d+)"', page))
    expected = sum(len(s["violations"]) for s in failing_run["scenarios"])
    assert len(ids) == expected and links == ids


def test_an_old_json_without_timeline_says_so():
    s = _scenario("fail")
    del s["timeline"]
    page = html.render({"target": "t", "scenarios": [s]})
    assert "No timeline in this report" in page and "<svg" not in page


def test_report_command_rebuilds_the_page_from_the_json(failing_run, tmp_path, capsys):
    saved = tmp_path / "run.json"
    saved.write_text(json.dumps(failing_run), encoding="utf-8")
    assert cli.main(["report", str(saved), "--html", str(tmp_path / "a.html")]) == 0
    assert (tmp_path / "a.html").read_text(encoding="utf-8") == html.render(failing_run)
    assert cli.main(["report", str(tmp_path / "missing.json"), "--html", "x.html"]) == 2
    assert cli.main(["report", str(saved)]) == 2  # nothing asked for
    assert "nothing to write" in capsys.readouterr().err


# -- the real browser ---------------------------------------------------------------------

_CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
_WIDTH, _HEIGHT = 1280, 1000


def _decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and unfiltered RGB(A) rows of an 8-bit, non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 3 if colour == 2 else 4
    raw, stride, rows, prev = zlib.decompress(idat), width * bpp, [], bytes(width * bpp)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + ((a + b) >> 1)) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pred) & 0xFF
        rows.append(bytes(line) if bpp == 3 else bytes(
            v for n, v in enumerate(line) if n % 4 != 3))
        prev = bytes(line)
    return width, height, rows


def _rgb(hex_colour: str) -> bytes:
    return bytes.fromhex(hex_colour.lstrip("#"))


@pytest.mark.skipif(_CHROMIUM is None, reason="chromium is not installed: `make browser` "
                    "installs Debian's chromium (needs root and apt-get); `make test` runs it")
def test_chromium_draws_the_timeline_with_violations_marked(failing_run, tmp_path):
    page = tmp_path / "report.html"
    html.write_html({**failing_run, "scenarios": failing_run["scenarios"][:1]}, page)
    shot = tmp_path / "shot.png"
    cmd = [_CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--hide-scrollbars", "--force-color-profile=srgb",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
           f"--window-size={_WIDTH},{_HEIGHT}", page.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert shot.is_file(), f"no screenshot; chromium said: {done.stderr[-2000:]}"
    width, height, rows = _decode_png(shot.read_bytes())
    assert (width, height) == (_WIDTH, _HEIGHT)
    pixels = [row[i:i + 3] for row in rows for i in range(0, len(row), 3)]
    colours = set(pixels)
    assert len(colours) > 100, f"only {len(colours)} colours: the page looks blank"

    def count(name: str) -> int:
        return pixels.count(_rgb(_svg.COLOURS[name]))

    # Each of these colours is painted only by the timeline picture.
    assert count("violation") > 100, "no violation marker drawn"
    assert count("fault") > 20, "no fault marker drawn"
    assert count("pending") > 1000 and count("delivered") > 500, "entry lanes missing"
