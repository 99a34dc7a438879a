"""The lexical index across hosts, under its old import path: the writer publishes, readers follow.

The code lives in ``tender_pipeline.lexical`` (``segment_files``, ``copy_stores``, ``publish``,
``follow``), so the index and its copies import one way only; this module keeps
``from tender_pipeline.lexical_sync import ...`` working.
"""

from tender_pipeline.lexical.copy_stores import FolderStore, Remote, S3Store, Store, store_for
from tender_pipeline.lexical.follow import PART_MAX_AGE_S, Follower, SyncError, SyncStatus
from tender_pipeline.lexical.publish import PublishError, publish, publish_index, restore_if_new
from tender_pipeline.lexical.segment_files import (
    EXTRAS,
    META,
    PUBLISH_LOCK,
    RETIRED,
    SEGMENT_FILE,
    SYNC_LOCK,
    referenced,
)

__all__ = [
    "EXTRAS", "META", "PART_MAX_AGE_S", "PUBLISH_LOCK", "RETIRED", "SEGMENT_FILE", "SYNC_LOCK",
    "FolderStore", "Follower", "PublishError", "Remote", "S3Store", "Store", "SyncError", "SyncStatus",
    "publish", "publish_index", "referenced", "restore_if_new", "store_for",
]
