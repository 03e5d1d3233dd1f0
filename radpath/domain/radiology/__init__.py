"""Radiology knowledge: series summaries, which series to segment, which study pairs with a slide."""
