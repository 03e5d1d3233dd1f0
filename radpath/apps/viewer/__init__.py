"""The viewers on one machine: the real OHIF viewer (npm ``@ohif/app``, fetched on first
use) served same-origin with a DICOMweb proxy, Kaapana's viewer routes mapped onto it,
and headless Chromium (``playwright-core``) to look at the result."""
