"""Terminal/markdown tables in the paper's Table-2 layout (rows = the 7 conditions)."""

from __future__ import annotations

import math

from anymodal.runtime.metrics import EMOTION_KEYS
from anymodal.runtime.patterns import ALL_PATTERNS

# Column order and headers of the paper's Table 2 (+ extra sentiment columns).
EMOTION_COLUMNS = (("wa", "WA"), ("ua", "UA"), ("f1", "F1"))
SENTIMENT_COLUMNS = (("acc2_non0", "Acc-2"), ("f1_non0", "F1"), ("mae", "MAE"), ("corr", "Corr"),
                     ("acc2_has0", "Acc-2 has0"), ("f1_has0", "F1 has0"), ("acc5", "Acc-5"),
                     ("acc7", "Acc-7"))
_NOT_PERCENT = {"mae", "corr"}


def columns_for(conditions: dict) -> tuple[tuple[str, str], ...]:
    first = next(iter(conditions.values()))
    return EMOTION_COLUMNS if set(EMOTION_KEYS) <= set(first) else SENTIMENT_COLUMNS


def fmt(key: str, value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.3f}" if key in _NOT_PERCENT else f"{100 * value:.2f}"


def condition_rows(conditions: dict):
    """Header and rows (strings); percentages for accuracies/F1, raw MAE/Corr."""
    cols = columns_for(conditions)
    header = ["condition"] + [h for _, h in cols]
    order = [p for p in ALL_PATTERNS if p in conditions]
    rows = [["{" + ",".join(p) + "}"] + [fmt(k, conditions[p].get(k)) for k, _ in cols] for p in order]
    if len(order) > 1:
        rows.append(["average"] + [fmt(k, sum(conditions[p][k] for p in order) / len(order))
                                   for k, _ in cols])
    return header, rows


def evaluation_rows(table: dict):
    """Header and rows (strings) of one table of an evaluation result (train/data/layout.py:
    {"title", "first", "rows": {label: metrics}}), in its own row order."""
    cols = columns_for(table["rows"])
    header = [table["first"]] + [h for _, h in cols]
    return header, [[label] + [fmt(k, m.get(k)) for k, _ in cols] for label, m in table["rows"].items()]


def print_evaluation(console, res: dict, prefix: str, suffix: str) -> None:
    """Every table of an evaluation result, first to last, titled `prefix [its title] suffix`."""
    for t in res["tables"]:
        header, rows = evaluation_rows(t)
        console.print(rich_table(" ".join(x for x in (prefix, t["title"], suffix) if x), header, rows))


def rich_table(title: str, header, rows):
    from rich.table import Table

    table = Table(title=title)
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i == 0 else "right")
    for r in rows:
        table.add_row(*r)
    return table


def markdown_table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def print_section(console, title: str, header, rows, lines) -> None:
    """A rich table, then its summary lines verbatim (rt-bench's terminal output)."""
    console.print(rich_table(title, header, rows))
    for line in lines:
        console.print(line, markup=False, highlight=False)


def markdown_section(heading: str, header, rows, lines) -> str:
    """`## heading`, the table, then the summary lines as a list (rt-bench --markdown)."""
    return "\n".join([f"## {heading}", "", markdown_table(header, rows), "", *[f"- {line}" for line in lines], ""])
