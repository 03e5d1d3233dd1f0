"""Segmentation with TotalSegmentator: weights, usage-stats opt-out, the API call."""
