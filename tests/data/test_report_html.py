"""The HTML drift report: complete, self-contained, escaped, and written atomically.

The realistic case runs the real drift tests on Elec2 (the first year as reference
against rows 30,000-40,000, after the known covariate shift) and adds the binned counts
the CLI would add, so the page is checked on the numbers users will actually see.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tidal.data.report_html import render_drift_html, write_drift_html
from tidal.data.svg import TOP_CATEGORIES, prepare_chart
from tidal.stats import dataset_drift

ELEC2 = Path(__file__).resolve().parents[3] / "shared" / "data" / "elec2.csv.gz"
HOSTILE = "<script>alert(1)</script>"
WHEN = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)


def with_distributions(result: dict[str, Any], reference: pd.DataFrame,
                       current: pd.DataFrame) -> dict[str, Any]:
    """Add per-column counts: shared bins for numerics, counts per value otherwise."""
    for column in result["columns"]:
        ref, cur = reference[column["column"]].to_numpy(), current[column["column"]].to_numpy()
        both = np.concatenate([ref, cur])
        if both.dtype.kind in "iuf" and len(np.unique(both)) > 20:
            edges = np.histogram_bin_edges(both, bins=20)
            column["kind"] = "numeric"
            column["distribution"] = {
                "kind": "numeric", "edges": edges.tolist(),
                "reference": np.histogram(ref, edges)[0].tolist(),
                "current": np.histogram(cur, edges)[0].tolist()}
        else:
            labels = sorted(set(both.astype(str)), key=natural)
            column["kind"] = "categorical"
            column["distribution"] = {
                "kind": "categorical", "labels": labels,
                "reference": [int(np.sum(ref.astype(str) == k)) for k in labels],
                "current": [int(np.sum(cur.astype(str) == k)) for k in labels]}
    return result


def natural(label: str) -> tuple[int, float, str]:
    """Numbers by value, then text: "2" before "10", as a user expects."""
    try:
        return 0, float(label), label
    except ValueError:
        return 1, 0.0, label


def elec2_result() -> dict[str, Any]:
    data = pd.read_csv(ELEC2)
    reference, current = data.iloc[:17_520], data.iloc[30_000:40_000]
    result = dataset_drift({c: reference[c].to_numpy() for c in data.columns},
                           {c: current[c].to_numpy() for c in data.columns})
    result["threshold"] = 0.5
    result["reference"] = {"name": "elec2.csv.gz[:17520]", "rows": len(reference)}
    result["current"] = {"name": "elec2.csv.gz[30000:40000]", "rows": len(current)}
    return with_distributions(result, reference, current)


class Page(HTMLParser):
    """Collects every attribute, the text, and the contents of <style> elements."""

    def __init__(self) -> None:
        super().__init__()
        self.attributes: list[tuple[str, str, str | None]] = []
        self.tags: list[str] = []
        self.text: list[str] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend((tag, name, value) for name, value in attrs)
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        (self.styles if self._in_style else self.text).append(data)


def parse(page: str) -> Page:
    parser = Page()
    parser.feed(page)
    parser.close()
    return parser


def column(name: str, statistic: float, p_value: float | None, drifted: bool,
           **extra: Any) -> dict[str, Any]:
    return {"column": name, "test": "ks" if p_value is not None else "wasserstein",
            "statistic": statistic, "p_value": p_value,
            "threshold": 0.05 if p_value is not None else 0.1, "drifted": drifted, **extra}


def minimal(columns: list[dict[str, Any]]) -> dict[str, Any]:
    drifted = sum(c["drifted"] for c in columns)
    return {"dataset_drift": drifted / len(columns) >= 0.5, "drift_share": drifted / len(columns),
            "number_of_drifted_columns": drifted, "columns": columns}


@pytest.fixture(scope="module")
def elec2() -> dict[str, Any]:
    return elec2_result()


def test_elec2_page_has_every_column_verdict_and_plot(elec2):
    page = render_drift_html(elec2, generated_at=WHEN)
    parsed = parse(page)
    text = " ".join(parsed.text)
    columns, drifted = elec2["columns"], elec2["number_of_drifted_columns"]
    rows = re.findall(r'<tr class="(drifted|stable)"><th scope="row" data-sort="([^"]*)"', page)
    assert sorted(name for _, name in rows) == sorted(c["column"] for c in columns)
    assert [kind for kind, _ in rows].count("drifted") == drifted
    assert page.count("badge bad") == drifted and text.count("no drift") == len(columns) - drifted
    # the first year against rows 30,000-40,000 spans Elec2's known covariate shift
    assert elec2["dataset_drift"] and "Dataset drift detected" in text
    share = f"{100 * elec2['drift_share']:.1f}%".replace(".0%", "%")
    assert f"{drifted} of {len(columns)} columns drifted ({share})" in text
    assert "2024-05-01 12:30 UTC" in text and "Tidal 0.1.0" in text
    assert "17,520 rows" in text and "10,000 rows" in text
    assert parsed.tags.count("svg") == len(columns)
    labelled = [v for tag, name, v in parsed.attributes
                if tag == "svg" and name == "aria-labelledby"]
    assert len(labelled) == len(columns)
    assert all(f'id="{v.split()[0]}"' in page and f'id="{v.split()[1]}"' in page
               for v in labelled)
    # drifted first, then by decreasing statistic
    expected = sorted(columns, key=lambda c: (not c["drifted"], -c["statistic"]))
    assert [name for _, name in rows] == [c["column"] for c in expected]


def test_page_needs_no_network(elec2):
    parsed = parse(render_drift_html(elec2))
    linking = [(tag, name, value) for tag, name, value in parsed.attributes
               if name in ("src", "href", "xlink:href", "srcset", "action", "data")]
    assert all((value or "").startswith("#") for _, _, value in linking), linking
    assert not [a for a in parsed.attributes if re.search(r"https?:|//", a[2] or "")]
    for css in parsed.styles + [v or "" for _, name, v in parsed.attributes if name == "style"]:
        assert "url(" not in css and "@import" not in css
    assert not re.search(r"https?://", " ".join(parsed.text + parsed.styles))
    assert parsed.tags.count("link") == 0 and "script" not in [
        tag for tag, name, _ in parsed.attributes if name == "src"]


def test_hostile_names_and_labels_are_escaped():
    hostile = column(HOSTILE, 0.3, None, True, kind="categorical", distribution={
        "kind": "categorical", "labels": [HOSTILE, "a&b", '"q"'],
        "reference": [5, 3, 2], "current": [1, 1, 8]})
    result = minimal([hostile, column("ok", 0.01, None, False)])
    result["reference"] = {"name": "<b>ref</b>.csv", "rows": 10}
    page = render_drift_html(result, title="<i>t</i>")
    assert HOSTILE not in page and "<b>ref" not in page and "<i>t" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    parsed = parse(page)
    assert parsed.tags.count("script") == 1  # only the page's own sorting script
    assert HOSTILE in " ".join(parsed.text)  # shown to the reader as text
    assert not [tag for tag in parsed.tags if tag in ("b", "i")]


def cell(page: str, row: str, label: str) -> str:
    """The HTML inside one table cell, found by row name and column heading."""
    body = page.split(f'<th scope="row" data-sort="{row}">', 1)[1].split("</tr>", 1)[0]
    return re.search(rf'<td data-label="{label}"[^>]*>(.*?)</td>', body).group(1)


def test_infinite_nan_and_missing_values_render():
    result = minimal([
        column("col_inf", math.inf, None, True),
        column("col_nan", math.nan, None, False),
        column("col_p", 0.2, 3e-12, True, distribution={"kind": "numeric", "edges": [0, 1],
                                                         "reference": [0], "current": [0]}),
        {"column": "bare", "drifted": False, "statistic": None},
    ])
    page = render_drift_html(result)
    assert cell(page, "col_inf", "Statistic") == "∞"
    assert cell(page, "col_nan", "Statistic") == "—" == cell(page, "bare", "Statistic")
    assert cell(page, "col_inf", "p-value") == "—" == cell(page, "bare", "p-value")
    assert cell(page, "col_p", "p-value") == "3.00e-12"
    assert cell(page, "col_p", "Threshold") == "p &lt; 0.05"
    assert cell(page, "col_inf", "Threshold") == "≥ 0.1"
    assert "no drift" in cell(page, "bare", "Verdict")
    text = " ".join(parse(page).text)
    assert not re.search(r"\b(nan|inf|None)\b", text, re.IGNORECASE), text
    assert text.count("no plot") == 3  # the all-zero histogram still draws (flat at 0)
    order = re.findall(r'<th scope="row" data-sort="([^"]*)"', page)
    assert order[:2] == ["col_inf", "col_p"] and set(order[2:]) == {"col_nan", "bare"}


def test_shares_not_counts_and_long_domains_cut_to_top_20():
    chart = prepare_chart({"kind": "numeric", "edges": [0, 1, 2],
                           "reference": [10, 30], "current": [100, 300]})
    assert chart is not None and chart.reference == chart.current == [25.0, 75.0]
    labels = [f"v{i}" for i in range(50)]
    counts = list(range(50, 0, -1))
    chart = prepare_chart({"kind": "categorical", "labels": labels, "reference": counts,
                           "current": counts[::-1]})
    assert chart is not None and len(chart.labels) == TOP_CATEGORIES + 1
    assert chart.labels[-1] == "other (30 values)"
    assert sum(chart.reference) == pytest.approx(100) == sum(chart.current)
    assert prepare_chart({"kind": "numeric", "edges": [0, 1], "reference": [1, 2],
                          "current": [1, 2]}) is None


def test_dataset_without_drift_and_missing_optional_keys():
    page = render_drift_html(minimal([column("a", 0.01, None, False)]))
    text = " ".join(parse(page).text)
    assert "No dataset drift" in text and "0 of 1 columns drifted (0%)" in text
    assert "threshold of 50%" in text and "Data drift report" in text


def test_write_is_atomic_and_replaces(tmp_path, elec2):
    target = tmp_path / "out" / "report.html"
    assert write_drift_html(elec2, target) == target
    first = target.read_text(encoding="utf-8")
    assert first.startswith("<!DOCTYPE html>") and "feat_6" in first
    write_drift_html(minimal([column("only", 0.0, None, False)]), str(target))
    second = target.read_text(encoding="utf-8")
    assert "only" in second and "feat_6" not in second
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.html"]
    assert target.stat().st_mode & 0o777 == 0o644


def test_failed_write_leaves_no_temp_file(tmp_path):
    target = tmp_path / "report.html"
    target.mkdir()  # os.replace cannot put a file over a directory
    with pytest.raises(OSError):
        write_drift_html(minimal([column("a", 0.0, None, False)]), target)
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"] and target.is_dir()


def test_a_change_in_missing_values_is_written_under_the_verdict():
    from tidal.data.drift import compare

    rng = np.random.default_rng(1)
    reference = pd.DataFrame({"x": rng.normal(size=2_000), "y": rng.normal(size=2_000)})
    current = pd.DataFrame({"x": rng.normal(size=2_000), "y": rng.normal(size=2_000)})
    current.loc[:399, "x"] = np.nan
    page = render_drift_html(compare(reference, current))
    assert "missing 0% → 20% (changed)" in page
    assert page.count("missing 0%") == 1  # y has no missing values: no note
