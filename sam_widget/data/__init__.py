"""Data in and out: mask files, COCO, label maps."""
