// Looks at a page in Debian's headless Chromium through playwright-core and reports
// what a person would see, as JSON on stdout. One argument: a JSON job
//   {"mode": "seg"|"slide"|"page", "url": ..., "out": <png path prefix>, "modules": <node_modules>}
// seg:   OHIF on a study with a SEG named as initial series: waits for the labelmap, goes to
//        the slice with the most mask pixels, screenshots with the SEG shown and hidden, and
//        reports that slice's image plane and where its pixels land on the screenshot.
// slide: OHIF microscopy: waits for the slide's viewer, screenshots once the image is still.
// page:  any page (radpath's split view, its patient view): once both viewers drew, screenshots once it is still.
// session: one browser, driven step by step: one JSON command per line on stdin, one JSON
//        answer per line on stdout ({"ok": result} or {"error": message}). Commands:
//        {"goto": url}, {"wait": "<js function>", "arg", "frame", "timeout"},
//        {"eval": "<js function>", "arg", "frame"} (frame: an iframe's name; none: the page),
//        {"click": [x, y]} (a real mouse click), {"screenshot": path}, {"still": path, "seconds"}.
const job = JSON.parse(process.argv[2]);
const { chromium } = require(job.modules + '/playwright-core');
const fs = require('fs');

const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--use-angle=swiftshader', '--enable-unsafe-swiftshader',
  '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1, EXCLUDE localhost'];

async function still(page, path, seconds) {
  let previous = null, same = 0;
  const until = Date.now() + seconds * 1000;
  while (Date.now() < until) {
    await page.waitForTimeout(750);
    const shot = await page.screenshot();
    if (previous && shot.equals(previous)) { if (++same >= 2) break; } else same = 0;
    previous = shot;
  }
  await page.screenshot({ path });
}

async function seg(page) {
  await page.waitForFunction(() => {
    try {
      const s = window.services, vp = s.viewportGridService.getActiveViewportId();
      return !!vp && s.segmentationService.getSegmentationRepresentations(vp).length > 0;
    } catch (e) { return false; }
  }, null, { timeout: 90000, polling: 250 });
  await page.waitForTimeout(1500);
  const info = await page.evaluate(async ([lower, upper]) => {
    const s = window.services, cs = window.cornerstone, cst = window.cornerstoneTools;
    const viewportId = s.viewportGridService.getActiveViewportId();
    const vp = s.cornerstoneViewportService.getCornerstoneViewport(viewportId);
    const rep = s.segmentationService.getSegmentationRepresentations(viewportId)[0];
    const seg = cst.segmentation.state.getSegmentation(rep.segmentationId);
    const stack = vp.getImageIds();
    let best = { count: -1, index: -1 };
    for (const id of (seg.representationData.Labelmap || {}).imageIds || []) {
      const image = cs.cache.getImage(id);
      if (!image) continue;
      const data = image.voxelManager ? image.voxelManager.getScalarData() : image.getPixelData();
      let n = 0; for (let i = 0; i < data.length; i++) if (data[i]) n++;
      if (n > best.count) best = { count: n, index: stack.indexOf(image.referencedImageId) };
    }
    if (best.index >= 0) await vp.setImageIdIndex(best.index);
    vp.setProperties({ voiRange: { lower, upper } });
    vp.render();
    const imageId = vp.getCurrentImageId();
    const plane = cs.metaData.get('imagePlaneModule', imageId);
    const world = (r, c) => [0, 1, 2].map(k => plane.imagePositionPatient[k]
      + c * plane.columnPixelSpacing * plane.rowCosines[k] + r * plane.rowPixelSpacing * plane.columnCosines[k]);
    const canvas = vp.canvas.getBoundingClientRect();
    const toScreen = (r, c) => { const p = vp.worldToCanvas(world(r, c)); return [canvas.left + p[0], canvas.top + p[1]]; };
    return {
      viewportId, segmentationId: rep.segmentationId, maskPixelsOnSlice: best.count, imageId,
      sop: (/instances\/([0-9.]+)/.exec(imageId) || [])[1] || null,
      rows: plane.rows, columns: plane.columns,
      // where pixel centres (row 0, col 0), (0, columns-1) and (rows-1, 0) land on the screenshot
      origin: toScreen(0, 0), alongRow: toScreen(0, plane.columns - 1), alongColumn: toScreen(plane.rows - 1, 0),
      canvas: { left: canvas.left, top: canvas.top, width: canvas.width, height: canvas.height },
    };
  }, [job.voi ? job.voi[0] : -160, job.voi ? job.voi[1] : 240]);
  await page.waitForTimeout(1500);
  await page.screenshot({ path: job.out + '_seg.png' });
  await page.evaluate(({ viewportId, segmentationId }) => {
    window.services.segmentationService.setSegmentVisibility(viewportId, segmentationId, 1, false);
  }, info);
  await page.waitForTimeout(1000);
  await page.screenshot({ path: job.out + '_noseg.png' });
  return info;
}

function frameOf(page, name) {
  if (!name) return page;
  const frame = page.frames().find(f => f.name() === name);
  if (!frame) throw new Error(`no frame named ${name}`);
  return frame;
}

async function session(page) {
  const lines = require('readline').createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (!line.trim()) continue;
    const command = JSON.parse(line);
    let answer;
    try {
      let result = null;
      if (command.goto) {
        await page.goto(command.goto, { waitUntil: 'load', timeout: 90000 });
      } else if (command.wait) {
        const target = frameOf(page, command.frame);
        await target.waitForFunction(`(${command.wait})(${JSON.stringify(command.arg ?? null)})`, null,
          { timeout: (command.timeout || 90) * 1000, polling: 250 });
      } else if (command.eval) {
        const target = frameOf(page, command.frame);
        result = await target.evaluate(`(${command.eval})(${JSON.stringify(command.arg ?? null)})`);
      } else if (command.click) {
        await page.mouse.click(command.click[0], command.click[1]);
      } else if (command.screenshot) {
        await page.screenshot({ path: command.screenshot });
      } else if (command.still) {
        await still(page, command.still, command.seconds || 30);
      } else if (command.sleep) {
        await page.waitForTimeout(command.sleep * 1000);
      }
      answer = { ok: result === undefined ? null : result };
    } catch (e) {
      answer = { error: String(e && e.message || e) };
    }
    process.stdout.write(JSON.stringify(answer) + '\n');
  }
}

(async () => {
  const started = Date.now();
  const profile = fs.mkdtempSync(job.scratch + '/chromium-');
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium', headless: true, viewport: { width: 1400, height: 900 }, args: ARGS,
    ignoreHTTPSErrors: !!job.ignoreHTTPSErrors,  // a test host's own certificate
  });
  const page = context.pages()[0] || (await context.newPage());
  const log = [];
  page.on('console', m => log.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', e => log.push(`[pageerror] ${e.message}`));
  page.on('response', r => { if (r.status() >= 400) log.push(`[http ${r.status()}] ${r.url()}`); });
  let result = {};
  try {
    if (job.mode === 'session') {
      await session(page);
      return;
    }
    await page.goto(job.url, { waitUntil: 'load', timeout: 90000 });
    if (job.mode === 'seg') {
      result = await seg(page);
    } else if (job.mode === 'slide') {
      await page.waitForSelector('.DicomMicroscopyViewer .ol-viewport', { timeout: 90000 });
      await still(page, job.out + '.png', 40);
      // The slide's own view, and the overview inset (a second, small copy) to leave out.
      result = await page.evaluate(() => {
        const rect = sel => { const e = document.querySelector(sel); return e ? e.getBoundingClientRect().toJSON() : null; };
        return { viewport: rect('.DicomMicroscopyViewer .ol-viewport'), overview: rect('.ol-overviewmap') };
      });
    } else {
      await page.waitForTimeout(3000);
      // Both viewers of a split page have drawn: a labelmap in OHIF, the slide's canvas.
      await page.waitForFunction(() => [...document.querySelectorAll('iframe')].every(f => {
        try {
          const w = f.contentWindow, d = f.contentDocument;
          if (d.querySelector('.ol-viewport canvas')) return true;  // a slide: SLIM, or OHIF microscopy
          const s = w.services, vp = s && s.viewportGridService.getActiveViewportId();
          return !!vp && s.segmentationService.getSegmentationRepresentations(vp).length > 0;
        } catch (e) { return false; }
      }), null, { timeout: 120000, polling: 500 });
      await still(page, job.out + '.png', 60);
      result.frames = page.frames().filter(f => f !== page.mainFrame()).map(f => f.url());
      result.centred = await page.evaluate(() => document.body.dataset.centred || null);  // radpath's pages
    }
    result.finalUrl = page.url();
  } finally {
    fs.writeFileSync(job.out + '.log', log.join('\n') + '\n');
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  if (job.mode === 'session') return;
  result.seconds = (Date.now() - started) / 1000;
  console.log(JSON.stringify(result));
})().catch(e => { console.error(String(e && e.stack || e)); process.exit(1); });
