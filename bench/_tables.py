"""One table printer for the bench scripts: a Markdown table (for the README), or aligned
columns for a terminal."""


def print_table(header, rows, markdown, numeric_from=None):
    """numeric_from: the first column to right-align in Markdown (None: none)."""
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "".join("--:|" if numeric_from is not None and i >= numeric_from
                            else "---|" for i in range(len(header))))
        for row in rows:
            print("| " + " | ".join(row) + " |")
        return
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(str(c).rjust(w) for c, w in zip(row, widths)))
