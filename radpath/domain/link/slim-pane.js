// SLIM in a pane (radpath's pages put it beside OHIF): SLIM's two side panels, 300 px each
// (patient, study and slides; the slide's specimens and annotations), would leave a pane no
// room for the slide, so they start folded away and the pane's "SLIM's panels" button shows
// them. SLIM's map follows its container's size. Same origin only (Kaapana's host, radpath view).
const SLIM_PANELS_FOLDED = ".ant-layout-sider{flex:0 0 0px!important;max-width:0!important;min-width:0!important;"
  + "width:0!important;overflow:hidden!important;border:0!important}";
function slimInAPane(frame, toggle) {
  let folded = true;
  const apply = () => {
    try {
      const doc = frame.contentDocument;
      if (!doc || !doc.head) return;
      let style = doc.getElementById("radpath-slim-pane");
      if (!style) {
        style = Object.assign(doc.createElement("style"), { id: "radpath-slim-pane" });
        doc.head.append(style);
      }
      style.textContent = folded ? SLIM_PANELS_FOLDED : "";
    } catch (e) { /* another origin: SLIM as it comes */ }
  };
  frame.addEventListener("load", apply);
  if (toggle) {
    toggle.addEventListener("click", () => { folded = !folded; toggle.setAttribute("aria-pressed", String(!folded)); apply(); });
  }
  apply();
}
