"""Thin Python client for the Sync-Defense Triton ensemble (gRPC or HTTP)."""

from .api import Detection, DetectionError, SyncDefenseClient, UploadTooLarge

__all__ = ["Detection", "DetectionError", "SyncDefenseClient", "UploadTooLarge"]
