"""What the slide pane of radpath's pages shows, asked in the browser: which viewer it is
(SLIM's own DOM, or OHIF's microscopy mode), which slide series that viewer fetched frames
of, and whether H&E-coloured pixels are on screen in the pane. Shared by the local viewer's
tests and the Kaapana host's check in the box."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: The pane (iframe ``frame``): where it is, its URL, whose DOM it holds, what it fetched.
PANE = """(id) => { const f = document.getElementById(id), r = f.getBoundingClientRect();
  const w = f.contentWindow, d = f.contentDocument;
  const fetched = w.performance.getEntriesByType('resource').map(e => e.name);
  return { rect: [r.left, r.top, r.right, r.bottom], url: w.location.href, title: d.title,
    slim: !!d.querySelector('.slide-viewer-sidebar') && d.title === 'Slim',
    ohif: !!w.services, drawn: !!d.querySelector('.ol-viewport canvas'),
    frames: fetched.filter(u => u.includes('/frames/')),
    dicomweb: fetched.filter(u => u.includes('/studies')),
    elsewhere: fetched.filter(u => u.includes('/studies/') && !u.startsWith(w.location.origin + '/')) }; }"""


def pink_pixels(screenshot: Path, rect: list[float]) -> int:
    """H&E-coloured pixels of ``screenshot`` within ``rect`` (left, top, right, bottom)."""
    from PIL import Image

    pixels = np.asarray(Image.open(screenshot).convert("RGB")).astype(int)
    left, top, right, bottom = (max(int(v), 0) for v in rect)
    part = pixels[top:bottom, left:right]
    return int(((part[..., 0] > 150) & (part[..., 2] > 120) & (part[..., 1] < part[..., 0] - 40)).sum())


def frames_of(pane: dict, series: str) -> list[str]:
    """The frame requests of ``pane`` for slide series ``series``."""
    return [url for url in pane["frames"] if f"/series/{series}/instances/" in url]


def slim_shows(browser, series: str, shot: Path, frame: str = "slide", timeout_s: float = 150) -> dict:
    """Waits until SLIM in the pane ``frame`` has fetched frames of ``series`` and drawn;
    then the pane's facts (:data:`PANE`) with its H&E pixels on screen (``pink``)."""
    browser.wait(f"""() => {{ try {{ const d = document.getElementById('{frame}').contentDocument,
          w = document.getElementById('{frame}').contentWindow;
        return w.location.href.includes('{series}') && !!d.querySelector('.ol-viewport canvas') &&
          w.performance.getEntriesByType('resource').some(e => e.name.includes('/series/{series}/instances/')
                                                                && e.name.includes('/frames/')); }}
        catch (e) {{ return false; }} }}""", timeout_s=timeout_s)
    browser.sleep(4)  # the frames drawn
    browser.screenshot(shot)
    pane = browser.evaluate(PANE, frame)
    return {**pane, "pink": pink_pixels(shot, pane["rect"])}
