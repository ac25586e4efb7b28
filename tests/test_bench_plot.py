"""The benchmarks' SVG line chart: valid XML, one line per run and per group mean, points where they belong."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from _plot import Group, Reference, line_chart  # noqa: E402

NS = {"s": "http://www.w3.org/2000/svg"}


def _points(el: ET.Element) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in (p.split(",") for p in el.attrib["points"].split())]


def test_one_thin_line_per_run_and_a_mean_per_group() -> None:
    groups = [Group("dense", [[30, 50, 70], [34, 54, 66]]), Group("drop <s=0.9>", [[33, 33, 34]], dash=1)]
    root = ET.fromstring(line_chart(groups, title="t & u", x_label="round", y_label="acc",
                                    references=[Reference(65, "bar")], y_range=(30, 70)))
    series = root.findall("s:g", NS)
    assert [g.attrib["data-name"] for g in series] == ["dense", "drop <s=0.9>"]  # escaped, then parsed back
    runs = [g.findall("s:polyline[@class='run']", NS) for g in series]
    means = [g.findall("s:polyline[@class='mean']", NS) for g in series]
    assert [len(r) for r in runs] == [2, 1] and [len(m) for m in means] == [1, 1]
    (frame,) = [r for r in root.findall("s:rect", NS) if r.attrib.get("fill") == "none"]
    top, height = float(frame.attrib["y"]), float(frame.attrib["height"])

    def y_of(v: float) -> float:  # the chart's y range is 30..70
        return top + height * (1 - (v - 30) / 40)

    assert [y for _, y in _points(runs[0][0])] == pytest.approx([y_of(30), y_of(50), y_of(70)], abs=0.06)
    assert [y for _, y in _points(runs[0][1])] == pytest.approx([y_of(34), y_of(54), y_of(66)], abs=0.06)
    dense_mean = _points(means[0][0])
    assert [y for _, y in dense_mean] == pytest.approx([y_of(32), y_of(52), y_of(68)], abs=0.06)
    assert "stroke-dasharray" in means[1][0].attrib and "stroke-dasharray" not in means[0][0].attrib
    xs = [x for x, _ in dense_mean]
    assert xs[0] < xs[1] < xs[2] and xs[1] - xs[0] == pytest.approx(xs[2] - xs[1])


def test_the_y_range_maps_to_the_plot_edges() -> None:
    svg = line_chart([Group("g", [[0.0, 10.0]])], title="t", x_label="x", y_label="y", y_range=(0, 10))
    root = ET.fromstring(svg)
    (mean,) = root.findall(".//s:polyline[@class='mean']", NS)
    (frame,) = [r for r in root.findall("s:rect", NS) if r.attrib.get("fill") == "none"]
    top, height = float(frame.attrib["y"]), float(frame.attrib["height"])
    (_, y0), (_, y1) = _points(mean)
    assert y0 == pytest.approx(top + height, abs=0.1) and y1 == pytest.approx(top, abs=0.1)


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ([], "at least one group"),
        ([Group("a", [[1, 2]]), Group("b", [[1, 2, 3]])], "same, non-zero number"),
        ([Group("a", [[1, float("nan")]])], "finite"),
    ],
)
def test_bad_input_is_refused(groups: list[Group], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        line_chart(groups, title="t", x_label="x", y_label="y")
