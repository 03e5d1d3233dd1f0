"""The pages a linked pair opens in.

The split-view page of one pair: static HTML, OHIF on the radiology study with the SEG on
one side (on the organ's centre slice), SLIM on the slide on the other, and the organ's
extent (the source slices the SEG covers) as links that open OHIF at that slice.

The patient view (``patient-view.html``, the same file for every pair): every pair radpath
linked for a study or patient, read from the PACS when it opens; a click on an organ
opens its slide. Only its settings (the DICOMweb root and viewer routes of the host that
serves it) are written in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape
from pathlib import Path

from radpath.domain.link.site import ViewerSite
from radpath.domain.link.viewers import ViewerLinks
from radpath.domain.records import Record


@dataclass(frozen=True)
class ExtentSlice(Record):
    """One source slice the organ's mask covers."""

    index: int  # 1-based, in the series' order along the slice normal
    z_mm: float  # ImagePositionPatient's third value (LPS)
    sop_instance_uid: str


PATIENT_VIEW_FILE = "patient.html"
_PATIENT_VIEW = Path(__file__).with_name("patient-view.html")
_SETTINGS = '<script type="application/json" id="radpath-settings">'
#: SLIM's side panels folded away in a pane (the patient view and the split page share it).
_SLIM_PANE = Path(__file__).with_name("slim-pane.js")
_SLIM_PANE_MARK = "/* radpath: SLIM in a pane */"


def centre_of(extent: list[ExtentSlice]) -> ExtentSlice | None:
    """The organ's centre slice: the middle of the source slices its mask covers."""
    return extent[len(extent) // 2] if extent else None


def patient_view_html(site: ViewerSite) -> str:
    """The patient view, for a host serving DICOMweb and the viewers where ``site`` says."""
    page = _PATIENT_VIEW.read_text(encoding="utf-8").replace(_SLIM_PANE_MARK, _SLIM_PANE.read_text(encoding="utf-8"))
    start = page.index(_SETTINGS) + len(_SETTINGS)
    end = page.index("</script>", start)
    return page[:start] + json.dumps(site.as_page_settings()).replace("</", "<\\/") + page[end:]


def split_view_html(title: str, links: ViewerLinks, extent: list[ExtentSlice], total_slices: int) -> str:
    centre = centre_of(extent)
    if extent:
        summary = (f"slices {extent[0].index}&ndash;{extent[-1].index} of {total_slices} "
                   f"(z {extent[0].z_mm:.1f} to {extent[-1].z_mm:.1f} mm)")
        jumps = " ".join(
            f'<a href="#slice-{s.index}" data-sop="{escape(s.sop_instance_uid)}">{label} {s.index}</a>'
            for label, s in (("first", extent[0]), ("centre", centre), ("last", extent[-1]))
        )
        every = "\n".join(
            f'<li><a href="#slice-{s.index}" data-sop="{escape(s.sop_instance_uid)}">slice {s.index}</a> '
            f"(z {s.z_mm:.1f} mm)</li>"
            for s in extent
        )
    else:
        summary, jumps, every = "no slice", "", ""
    # OHIF opens on the SEG (an image named in its URL would leave the SEG out); the script
    # then moves it to the organ's centre slice, and the extent's links to theirs.
    opening = links.ohif()
    centre_sop = json.dumps(centre.sop_instance_uid if centre else None)
    slim_pane = _SLIM_PANE.read_text(encoding="utf-8")
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
  main {{ display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1.25fr); gap: 2px; min-height: 0; }}
  header button {{ font: inherit; color: #ddd; background: #262626; border: 1px solid #555; border-radius: 4px; }}
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
  <a href="{escape(opening)}" target="_blank">OHIF</a>
  <a href="{escape(links.slim)}" target="_blank">SLIM</a>
  <button id="slim-panels" type="button" aria-pressed="false">SLIM's panels</button>
</header>
<main>
  <iframe name="ohif" id="ohif" title="OHIF: radiology with the segmentation" src="{escape(opening)}"></iframe>
  <iframe name="slim" id="slim" title="SLIM: the slide" src="{escape(links.slim)}"></iframe>
</main>
<script>
"use strict";
{slim_pane}
slimInAPane(document.getElementById("slim"), document.getElementById("slim-panels"));
// OHIF at a slice, once its SEG is in (same origin: Kaapana's host, or radpath view's).
async function showSlice(sop) {{
  for (let i = 0; i < 480; i++) {{
    try {{
      const s = document.getElementById("ohif").contentWindow.services;
      const id = s.viewportGridService.getActiveViewportId();
      const vp = s.cornerstoneViewportService.getCornerstoneViewport(id);
      if (vp && s.segmentationService.getSegmentationRepresentations(id).length) {{
        const index = vp.getImageIds().findIndex(imageId => imageId.includes(`/instances/${{sop}}/`));
        if (index >= 0) {{ await vp.setImageIdIndex(index); vp.render(); document.body.dataset.centred = sop; }}
        return;
      }}
    }} catch (e) {{ /* not loaded yet, or another origin */ }}
    await new Promise(r => setTimeout(r, 250));
  }}
}}
for (const a of document.querySelectorAll("a[data-sop]")) {{
  a.addEventListener("click", event => {{ event.preventDefault(); showSlice(a.dataset.sop); }});
}}
const centre = {centre_sop};
if (centre) showSlice(centre);
</script>
</body>
</html>
"""
