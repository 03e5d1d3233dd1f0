"""The split-view page of a linked pair: static HTML, OHIF on the radiology study with the
SEG on one side, SLIM on the slide on the other, and the organ's extent (the source
slices the SEG covers) as links that open OHIF at that slice. No build step, no script
that reads the viewers' pixels: two frames and links."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from radpath.domain.link.viewers import ViewerLinks
from radpath.domain.records import Record


@dataclass(frozen=True)
class ExtentSlice(Record):
    """One source slice the organ's mask covers."""

    index: int  # 1-based, in the series' order along the slice normal
    z_mm: float  # ImagePositionPatient's third value (LPS)
    sop_instance_uid: str


def split_view_html(title: str, links: ViewerLinks, extent: list[ExtentSlice], total_slices: int) -> str:
    centre = extent[len(extent) // 2] if extent else None
    if extent:
        summary = (f"slices {extent[0].index}&ndash;{extent[-1].index} of {total_slices} "
                   f"(z {extent[0].z_mm:.1f} to {extent[-1].z_mm:.1f} mm)")
        jumps = " ".join(
            f'<a target="ohif" href="{escape(links.ohif(s.sop_instance_uid))}">{label} {s.index}</a>'
            for label, s in (("first", extent[0]), ("centre", centre), ("last", extent[-1]))
        )
        every = "\n".join(
            f'<li><a target="ohif" href="{escape(links.ohif(s.sop_instance_uid))}">slice {s.index}</a> '
            f"(z {s.z_mm:.1f} mm)</li>"
            for s in extent
        )
    else:
        summary, jumps, every = "no slice", "", ""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{escape(title)}</title>
<style>
  html, body {{ margin: 0; height: 100%; font: 14px system-ui, sans-serif; background: #111; color: #ddd; }}
  body {{ display: grid; grid-template-rows: auto 1fr; }}
  header {{ padding: 6px 12px; background: #222; display: flex; gap: 18px; align-items: baseline; flex-wrap: wrap; }}
  header a {{ color: #9cf; }}
  details {{ position: relative; }}
  details ul {{ position: absolute; z-index: 2; background: #222; max-height: 60vh; overflow: auto; margin: 0;
               padding: 6px 18px; }}
  main {{ display: grid; grid-template-columns: 1fr 1fr; gap: 2px; min-height: 0; }}
  iframe {{ width: 100%; height: 100%; border: 0; background: #000; }}
</style>
</head>
<body>
<header>
  <strong>{escape(title)}</strong>
  <span>organ extent: {summary}</span>
  <span>{jumps}</span>
  <details><summary>every slice</summary><ul>
{every}
  </ul></details>
  <a href="{escape(links.ohif())}" target="_blank">OHIF</a>
  <a href="{escape(links.slim)}" target="_blank">SLIM</a>
</header>
<main>
  <iframe name="ohif" id="ohif" title="OHIF: radiology with the segmentation" src="{escape(links.ohif())}"></iframe>
  <iframe name="slim" id="slim" title="SLIM: the slide" src="{escape(links.slim)}"></iframe>
</main>
</body>
</html>
"""
