"""Storage (local and s3://), the media loader and the record schemas."""
