"""Where originals come from when they are not on the local disk: HTTP(S) and S3 origins."""
