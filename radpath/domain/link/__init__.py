"""The link between a radiology series and a slide: the KOS that records it in the PACS
(:mod:`.kos`), the viewer URLs (:mod:`.viewers`) and the split-view page (:mod:`.page`)."""
