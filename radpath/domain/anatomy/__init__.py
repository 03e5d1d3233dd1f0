"""Which organ a slide or series shows: the anatomy master and the body-part resolver."""

from radpath.domain.anatomy.master import Master, load_master
from radpath.domain.anatomy.resolver import BodyPart, resolve_body_part

__all__ = ["BodyPart", "Master", "load_master", "resolve_body_part"]
