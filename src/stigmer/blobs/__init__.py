"""Content-addressed blob storage: where large payloads and conversations live instead of workflow history.

``open_store(url, home)`` gives a :class:`~.store.BlobStore`: files under ``$STIGMER_HOME/blobs`` by
default, an S3-compatible bucket for several machines. Every blob belongs to a namespace (the workflow id
of the execution or session that wrote it) so deleting an execution can delete its blobs.
``stigmer.blobs.codec`` (imported on its own: it loads the Temporal SDK) is the claim-check payload codec
every Temporal client stigmer makes uses; ``stigmer.blobs.s3`` the S3 store (imported only for s3:// URLs).
"""

from .store import BlobMissing, BlobStore, LocalBlobStore, blob_key, configured_store, open_store

__all__ = ["BlobMissing", "BlobStore", "LocalBlobStore", "blob_key", "configured_store", "open_store"]
