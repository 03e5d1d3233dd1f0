"""Single DICOM values from user input, checked against the VR they are written as.

Identity from sidecars, CSV manifests and run confs lands in DICOM attributes (PatientID
is LO, PatientName PN, AccessionNumber SH …). pydicom's own validation checks lengths
and character repertoires; on top of it a value must be *one* value (a backslash would
split it into two: ``REL\\BS`` becomes a two-valued PatientID) and carry no control
characters (LO, SH and PN allow none but ESC, and radpath writes no escape sequences).
Text is written as UTF-8 (ISO_IR 192); a value whose UTF-8 form has an odd length is padded
with a space, so it must leave room for that space within the VR's length.
"""

from __future__ import annotations

import unicodedata
from enum import Enum

from pydicom import config
from pydicom.valuerep import validate_value


class VR(str, Enum):
    """The value representations radpath writes user input as (PS3.5 table 6.2-1)."""

    LO = "LO"  # Long String: 64 characters
    SH = "SH"  # Short String: 16 characters
    PN = "PN"  # Person Name: 64 characters per component group, up to 5 ^-separated components
    DA = "DA"  # Date: YYYYMMDD
    CS = "CS"  # Code String: 16 characters of A-Z, 0-9, space, _
    UI = "UI"  # Unique Identifier: 64 characters of digits and dots
    UT = "UT"  # Unlimited Text


#: Characters per value (per component group for PN), PS3.5 table 6.2-1.
_MAX_LENGTH = {VR.LO: 64, VR.SH: 16, VR.PN: 64}


def check_value(vr: VR, text: str) -> str:
    """``text`` when it is one valid value of ``vr``; ValueError saying why otherwise."""
    if "\\" in text and vr is not VR.UT:
        raise ValueError(f"must be a single value: a backslash would make it several ({vr.value})")
    # Cc: C0, DEL and C1 controls; Cs: lone surrogates, which no character set can encode.
    if any(unicodedata.category(c) in ("Cc", "Cs") and not (vr is VR.UT and c in "\r\n\t") for c in text):
        raise ValueError(f"must not contain control characters ({vr.value})")
    if vr is VR.PN:
        for group in text.split("="):
            if group.count("^") > 4:
                raise ValueError("a person name has at most 5 ^-separated components (PN)")
        if text.count("=") > 2:
            raise ValueError("a person name has at most 3 =-separated groups (PN)")
    limit = _MAX_LENGTH.get(vr)
    last = text.split("=")[-1] if vr is VR.PN else text
    if limit and len(last) <= limit < len(last) + len(text.encode("utf-8")) % 2:
        raise ValueError(f"the value length ({len(last)}, and the padding its UTF-8 form needs) exceeds the "
                         f"maximum length of {limit} allowed for VR {vr.value}")
    try:
        validate_value(vr.value, text, config.RAISE)
    except ValueError as err:
        message = str(err)
        # pydicom's message may quote the value; a PatientID or birth date stays out of logs
        if message.startswith("Invalid value"):
            raise ValueError(f"is not a valid {vr.value} value") from None
        raise ValueError(message.split(" Please see")[0].rstrip(".").replace("The value", "the value")) from None
    return text
