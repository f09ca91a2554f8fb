"""The HTML report: self-contained, escaped, linked; and drawn for real in headless chromium.

The browser tests render a real failing run (legacy under power loss and a full disk),
and a processor view full of calls that raised, screenshot them with Debian's chromium
and decode the PNG with zlib: the picture must be there and carry the timeline's own
colours (violation rings, fault triangles, entry states), and a raised call must not be
painted in the violations' red. ``make browser`` (called by ``make test``) installs
chromium when it can.
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

from harness import cli
from harness.report import _svg, html
from harness.run import scenarios
from harness.run.runner import run_suite

REPO = Path(__file__).resolve().parents[3]


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
    ids = set(re.findall(r'id="([^"]+-v\d+)"', page))
    links = set(re.findall(r'href="#([^"]+-v\d+)"', page))
    expected = sum(len(s["violations"]) for s in failing_run["scenarios"])
    assert len(ids) == expected and links == ids


def _lost(n: int, at: int, fault: str = "PowerLoss()") -> dict:
    return {"kind": "lost", "entry": f"e{n}", "ops": [at - 2, at], "faults": [fault],
            "detail": f"entry e{n}: enqueue returned ok at op {at}; never came out of the "
                      "final drain; PowerLoss() fired at op 40 (power lost)"}


def test_violations_saying_the_same_thing_are_one_item_with_every_entry_linkable():
    s = _scenario("fail")
    s["violations"] = [_lost(n, 10 + n) for n in range(1, 13)] + [
        {"kind": "duplicate", "entry": "e20", "ops": [50], "faults": [],
         "detail": "entry e20: acked at op 50, claimed again at op 60"}]
    page = html.render({"target": "t", "scenarios": [s]})
    listing = page[page.index('<ol class="viol">'):page.index("</ol>", page.index(
        '<ol class="viol">'))]
    items = re.findall(r"<li><span class=\"kind\">(\w+)</span>", listing)
    assert items == ["lost", "duplicate"], "12 losses with one cause are one item"
    assert "12 entries:" in listing and "in 2 groups" in page
    # the shared sentence keeps the shared fault op and folds each entry's own op
    assert "enqueue returned ok at op …; never came out" in listing
    assert "fired at op 40 (power lost)" in listing
    anchors = re.findall(r'id="(s-t-sc-fail-v\d+)"', listing)
    assert len(anchors) == 13, "every violation keeps an anchor the rings link to"
    assert "<details><summary>each entry's own sentence</summary>" in listing
    assert "enqueue returned ok at op 21;" in listing  # e11's own, folded


def _processor_timeline(outcome: str, error: str | None) -> dict:
    return {"end": 20, "drain_at": 15, "faults": ["DiskFull()"], "marks": [],
            "calls": [[1, 3, 0, "enqueue", "e1", "ok", None],
                      [4, 6, 0, "enqueue", "e2", outcome, error]]}


def test_a_call_that_raised_has_its_own_style_not_the_violation_red():
    raised = _svg.processor_svg(_processor_timeline("info", "OSError: [Errno 28]"), [], "a")
    plain = _svg.processor_svg(_processor_timeline("ok", None), [], "a")
    assert f'stroke="{_svg.COLOURS["raised"]}"' in raised
    assert f'stroke="{_svg.COLOURS["raised"]}"' not in plain
    assert _svg.COLOURS["violation"] not in raised, "red is for violations only"
    killed = _svg.processor_svg(_processor_timeline("info", "processor killed"), [], "a")
    assert f'stroke="{_svg.COLOURS["raised"]}"' not in killed  # the kill's cross says it
    words = [w for _, w in _svg.legend_items("processor")]
    assert any("raised" in w for w in words)


def test_a_lost_entry_is_drawn_lost_from_the_fault_that_lost_it():
    timeline = {"end": 100, "drain_at": 80, "faults": ["PowerLoss()"],
                "calls": [[1, 10, 0, "enqueue", "e1", "ok", None],
                          [2, 12, 0, "enqueue", "e2", "ok", None],
                          [82, 84, -1, "claim", "e2", "ok", None],
                          [85, 86, -1, "ack", "e2", "ok", None]],
                "marks": [[40, -2, "power_loss", 0, "power lost", [0]]]}
    picture, _ = _svg.entry_svg(timeline, [_lost(1, 10)], "a")
    lane = picture[picture.index(">e1<"):picture.index(">e2<")]
    frame = _svg._Frame(100, 2)
    assert f'width="{frame.x(40) - frame.x(10)}"' in lane, "in the queue until the loss"
    assert f'<line x1="{frame.x(40)}"' in lane and "lost from op 40" in lane
    assert f'stroke="{_svg.COLOURS["lost"]}"' in lane
    # no fault named: lost from its last call's end
    quiet = {**_lost(1, 10), "faults": []}
    picture, _ = _svg.entry_svg(timeline, [quiet], "a")
    assert f'<line x1="{frame.x(10)}"' in picture and "lost from op 10" in picture
    # an entry that came out is never drawn lost
    assert "lost from" not in picture[picture.index(">e2<"):]


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


def _screenshot(page: Path, shot: Path, profile: Path) -> list[bytes]:
    """Chromium's picture of ``page``, as a list of RGB pixels."""
    cmd = [_CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--hide-scrollbars", "--force-color-profile=srgb",
           f"--user-data-dir={profile}", f"--screenshot={shot}",
           f"--window-size={_WIDTH},{_HEIGHT}", page.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert shot.is_file(), f"no screenshot; chromium said: {done.stderr[-2000:]}"
    width, height, rows = _decode_png(shot.read_bytes())
    assert (width, height) == (_WIDTH, _HEIGHT)
    return [row[i:i + 3] for row in rows for i in range(0, len(row), 3)]


def _rgb(hex_colour: str) -> bytes:
    return bytes.fromhex(hex_colour.lstrip("#"))


@pytest.mark.skipif(_CHROMIUM is None, reason="chromium is not installed: `make browser` "
                    "installs Debian's chromium (needs root and apt-get); `make test` runs it")
def test_chromium_draws_the_timeline_with_violations_marked(failing_run, tmp_path):
    page = tmp_path / "report.html"
    html.write_html({**failing_run, "scenarios": failing_run["scenarios"][:1]}, page)
    pixels = _screenshot(page, tmp_path / "shot.png", tmp_path / "profile")
    colours = set(pixels)
    assert len(colours) > 100, f"only {len(colours)} colours: the page looks blank"

    def count(name: str) -> int:
        return pixels.count(_rgb(_svg.COLOURS[name]))

    # Each of these colours is painted only by the timeline picture.
    assert count("violation") > 100, "no violation marker drawn"
    assert count("fault") > 20, "no fault marker drawn"
    assert count("pending") > 1000 and count("delivered") > 500, "entry lanes missing"


@pytest.mark.skipif(_CHROMIUM is None, reason="chromium is not installed: `make browser` "
                    "installs Debian's chromium (needs root and apt-get); `make test` runs it")
def test_chromium_draws_raised_calls_in_their_own_style_not_in_violation_red(tmp_path):
    # 40 calls of which 30 raised, and no violation: nothing on the page may be the
    # violations' red (it was the outline of every raised call).
    calls = [[2 + 3 * n, 4 + 3 * n, n % 3, ("enqueue", "claim", "ack")[n % 3], f"e{n}",
              "ok" if n < 10 else "info", None if n < 10 else "JSONDecodeError: Extra data"]
             for n in range(40)]
    s = {**_scenario("fail"), "status": "error", "violations": [], "counts": {},
         "timeline": {"end": 130, "drain_at": 125, "calls": calls, "marks": [],
                      "faults": []}}
    page = tmp_path / "report.html"
    page.write_text(html.render({"target": "t", "scenarios": [s]}).replace(
        'class="pick-entry" checked>', 'class="pick-entry">').replace(
        'class="pick-proc">', 'class="pick-proc" checked>'), encoding="utf-8")
    pixels = _screenshot(page, tmp_path / "shot.png", tmp_path / "profile")
    colours = set(pixels)
    # the legend's 12 x 10 swatch is the only red allowed
    assert pixels.count(_rgb(_svg.COLOURS["violation"])) <= 120, "a raised call is drawn red"
    grey = {c for c in colours if c[0] == c[1] == c[2] and c[0] < 0x70}
    assert sum(pixels.count(c) for c in grey) > 500, "no dashed outline drawn"


def test_the_runners_stop_before_the_drain_adds_no_empty_lane():
    timeline = {**_processor_timeline("ok", None),
                "marks": [[14, -2, "kill", None, "every processor stops", [0]]]}
    picture = _svg.processor_svg(timeline, [], "a")
    assert ">every processor<" not in picture and ">p0<" in picture
    timeline["marks"].append([8, -2, "power_loss", 0, "power lost", [0]])
    assert ">every processor<" in _svg.processor_svg(timeline, [], "a")
